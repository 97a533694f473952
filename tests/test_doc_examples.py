"""The command lines in the README and docs/ stay true: every ``w2v2 ...`` line in a shell
code block parses with the real CLI (an option or value that no longer exists fails here),
and the README's quick start, examples and output sample run for real on the example clips,
with the tests' small trained model in place of the hub id."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from w2v2cli.cli import main

ROOT = Path(__file__).parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
HUB_MODEL = "facebook/wav2vec2-base-960h"
SHELL = {"sh", "bash", "shell", "console"}
#: Shell operators that end a simple command (``:::`` ends GNU parallel's command).
OPERATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")", ":::"}
REDIRECTS = {">", ">>", "<", ">&", "<&", ">|"}
#: Words that run the command after them: ``nohup w2v2 ...``, ``parallel -j4 w2v2 ...``.
WRAPPERS = {"nohup", "time", "env", "exec", "sudo", "nice", "timeout", "srun", "parallel", "xargs"}


@dataclass(frozen=True)
class DocCommand:
    where: str  # file:line
    line: str  # the command as written (continuations joined)
    argv: tuple[str, ...]  # what follows ``w2v2``
    stdout: str | None  # the file its stdout is redirected to, if any


def shell_blocks(text: str):
    """(first line number, language, lines) of every fenced shell code block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if m is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        if m.group(2) in SHELL:
            yield i + 2, m.group(2), lines[i + 1 : end]
        i = end + 1


def logical_lines(lang: str, lines: list[str], first: int):
    """(line number, command line): ``\\`` continuations joined; in console blocks only the
    ``$ `` prompt lines (and their continuations), the rest being output; heredoc bodies
    skipped unless a line in one is itself a ``w2v2`` invocation."""
    i = 0
    heredoc = None
    while i < len(lines):
        number, line = first + i, lines[i]
        i += 1
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            elif line.lstrip().startswith("w2v2 "):
                yield number, line.strip()
            continue
        if lang == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        while line.rstrip().endswith("\\") and i < len(lines):
            line = line.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
        here = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if here:
            heredoc = here.group(1)
        yield number, line


def _expand(token: str) -> str:
    """Shell variables and GNU parallel's ``{}`` stand for a shard number: 1."""
    token = re.sub(r"\$\{\w+\}|\$\w+", "1", token)
    return token.replace("{}", "1")


def invocations(line: str):
    """(argv after ``w2v2``, stdout file) for each ``w2v2`` invocation in a command line."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    simple: list[list[str]] = [[]]
    for token in tokens:
        if token in OPERATORS:
            simple.append([])
        else:
            simple[-1].append(token)
    for words in simple:
        start = 0
        while start < len(words) and re.match(r"^\w+=", words[start]):
            start += 1  # VAR=value before the command
        if start >= len(words) or (words[start] != "w2v2" and words[start] not in WRAPPERS):
            continue
        if "w2v2" not in words[start:]:
            continue
        args, stdout = [], None
        rest = words[words.index("w2v2", start) + 1 :]
        k = 0
        while k < len(rest):
            if rest[k] in REDIRECTS:
                if args and args[-1].isdigit():
                    args.pop()  # the 2 of 2>
                elif rest[k] in {">", ">>", ">|"} and k + 1 < len(rest):
                    stdout = rest[k + 1]
                k += 2
                continue
            args.append(_expand(rest[k]))
            k += 1
        yield tuple(args), stdout


def doc_commands(files=DOC_FILES) -> list[DocCommand]:
    found = []
    for path in files:
        text = path.read_text()
        for first, lang, lines in shell_blocks(text):
            for number, line in logical_lines(lang, lines, first):
                for argv, stdout in invocations(line):
                    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
                    where = f"{name}:{number}"
                    found.append(DocCommand(where, line.strip(), argv, stdout))
    return found


def leaf_command(argv) -> tuple[click.Command, list[str]]:
    """The command an argv names, and its own arguments (group options taken off)."""
    ctx = main.make_context("w2v2", list(argv))
    cmd: click.Command = main
    args = [*ctx.__dict__.get("_protected_args", []), *ctx.args]
    while isinstance(cmd, click.Group):
        sub_name, sub, args = cmd.resolve_command(ctx, args)
        if isinstance(sub, click.Group):
            ctx = sub.make_context(sub_name, args, parent=ctx)
            args = [*ctx.__dict__.get("_protected_args", []), *ctx.args]
        cmd = sub
    return cmd, list(args)


def existing_paths(cmd: click.Command, args: list[str], tmp: Path) -> list[str]:
    """``args`` with each value of a path parameter that click checks for existence replaced
    by an existing file or folder of the kind the parameter accepts (the docs' paths are
    examples); everything else is left as written."""
    ctx = click.Context(cmd, info_name=cmd.name)
    opts, _, _ = cmd.make_parser(ctx).parse_args(list(args))
    swap: dict[str, str] = {}
    for param in cmd.params:
        kind = param.type
        if not (isinstance(kind, click.Path) and kind.exists) or opts.get(param.name) is None:
            continue
        raw = opts[param.name]
        for value in raw if isinstance(raw, (list, tuple)) else [raw]:
            if value == "-" and kind.allow_dash:
                continue
            stand_in = tmp / f"exists-{len(swap)}"
            if kind.file_okay:
                stand_in.write_text("")
            else:
                stand_in.mkdir()
            swap[value] = str(stand_in)
    out = []
    for arg in args:
        if arg in swap:
            arg = swap[arg]
        elif "=" in arg and arg.split("=", 1)[1] in swap:
            option, value = arg.split("=", 1)
            arg = f"{option}={swap[value]}"
        out.append(arg)
    return out


def parse(argv, tmp: Path) -> click.Context:
    """Parse an argv as ``w2v2`` would, without running it: unknown commands, options and
    values, and malformed values fail with click's usage error."""
    cmd, args = leaf_command(argv)
    parent = click.Context(main, info_name="w2v2")
    return cmd.make_context(cmd.name, existing_paths(cmd, args, tmp), parent=parent)


COMMANDS = doc_commands()


def test_docs_have_commands():
    where = {c.where.split(":")[0] for c in COMMANDS}
    assert "README.md" in where and len(where) > 1 and len(COMMANDS) >= 15, where


@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_documented_command_parses(command, tmp_path):
    try:
        parse(command.argv, tmp_path)
    except click.ClickException as e:
        pytest.fail(f"{command.where}: `{command.line}`: {e.format_message()}")


@pytest.mark.parametrize(
    "text",
    [
        "w2v2 transcribe a.wav --no-such-option",
        "w2v2 transcribe a.wav -f docx",
        "w2v2 transcribe a.wav --case title",
        "w2v2 transcribe a.wav --batch-size eight",
        "w2v2 eval test.tsv --decoder nbest",
        "w2v2 lm tune dev.jsonl --lm x --grid many",
        "w2v2 transcibe a.wav",
        "w2v2 lm bulid corpus.txt -o x.bin",
    ],
)
def test_a_stale_command_fails(text, tmp_path):
    """The check above can fail: a copy of a docs block with an option, value or command that
    does not exist is refused."""
    doc = tmp_path / "doc.md"
    doc.write_text(f"Text.\n\n```sh\n{text} \\\n    -o out\n```\n")
    (command,) = doc_commands([doc])
    with pytest.raises(click.UsageError):
        parse(command.argv, tmp_path)


def test_command_extraction(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```console\n$ w2v2 transcribe talk.mp4 -f srt --stdout > talk.srt\n"
        "progress output w2v2 transcribe nothing\n```\n\n"
        "```sh\n# a comment: w2v2 transcribe nothing\n"
        "parallel -j4 w2v2 transcribe /data --shard {}/4 -q ::: 1 2 3 4\n"
        'w2v2 transcribe /data \\\n    --shard "${SLURM_ARRAY_TASK_ID}/16" 2>/dev/null | head\n'
        "pip install 'w2v2cli[vad]'\n"
        "cat > notes.md <<'EOF'\nrun w2v2 transcribe later\nEOF\n```\n\n"
        "```python\nw2v2 = 1\n```\n"
    )
    got = [(c.argv, c.stdout) for c in doc_commands([doc])]
    assert got == [
        (("transcribe", "talk.mp4", "-f", "srt", "--stdout"), "talk.srt"),
        (("transcribe", "/data", "--shard", "1/4", "-q"), None),
        (("transcribe", "/data", "--shard", "1/16"), None),
    ]


# --- The README's own commands, run for real -------------------------------------------


def readme_section(heading: str) -> tuple[int, int]:
    """The first and last line numbers of the README's ``## heading`` section."""
    lines = (ROOT / "README.md").read_text().splitlines()
    first = lines.index(f"## {heading}") + 1
    last = next((i for i in range(first, len(lines)) if lines[i].startswith("## ")), len(lines))
    return first, last


def section_commands(heading: str) -> list[DocCommand]:
    first, last = readme_section(heading)
    return [
        c
        for c in doc_commands([ROOT / "README.md"])
        if first <= int(c.where.rpartition(":")[2]) <= last
    ]


def run_doc_command(command: DocCommand, model: Path, cwd: Path):
    """Run a documented command in ``cwd`` with ``model`` in place of the hub id, on the
    torch backend with one thread (fast for a tiny model; the backends give the same text),
    its stdout written where the line redirects it."""
    argv = [str(model) if a == HUB_MODEL else a for a in command.argv]
    cmd, _ = leaf_command(argv)
    names = {p.name for p in cmd.params}
    if "model" in names and not {"-m", "--model"} & set(argv):
        argv += ["-m", str(model)]
    if "backend" in names:
        argv += ["--backend", "torch", "--threads", "1"]
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 0, f"`{command.line}` exited {result.exit_code}:\n{result.output}"
    if command.stdout:
        (cwd / command.stdout).write_text(result.stdout)
    return result


@pytest.fixture
def examples_copy(tmp_path, monkeypatch) -> Path:
    """A folder holding a copy of examples/audio (as in a clone) and a corpus.txt, as cwd."""
    shutil.copytree(ROOT / "examples" / "audio", tmp_path / "examples" / "audio")
    rows = (ROOT / "examples" / "audio" / "references.tsv").read_text().splitlines()[1:]
    (tmp_path / "corpus.txt").write_text("".join(row.split("\t")[1] + "\n" for row in rows))
    monkeypatch.chdir(tmp_path)
    return tmp_path


CLIPS = ("fox", "journey", "stella")


def test_readme_quick_start_runs(trained_model, examples_copy):
    (command,) = section_commands("Quick start")
    run_doc_command(command, trained_model, examples_copy)
    # "writes transcripts/fox.txt, transcripts/fox.json and so on"
    written = sorted(p.name for p in (examples_copy / "transcripts").iterdir())
    assert written == sorted(f"{c}.{ext}" for c in CLIPS for ext in ("txt", "json"))
    assert all((examples_copy / "transcripts" / f"{c}.txt").read_text().strip() for c in CLIPS)


@pytest.mark.slow
def test_readme_examples_run(trained_model, examples_copy):
    import srt

    commands = section_commands("Examples")
    assert len(commands) >= 5
    results = [run_doc_command(c, trained_model, examples_copy) for c in commands]
    out = examples_copy
    # 1: stella.srt
    assert list(srt.parse((out / "stella.srt").read_text()))
    # 2: every format for every clip
    assert sorted(p.name for p in (out / "transcripts-vad").iterdir()) == sorted(
        f"{c}.{ext}" for c in CLIPS for ext in ("txt", "json", "srt", "vtt", "tsv")
    )
    # 3: the LM and its word list, then beam search with it
    assert (out / "corpus.bin").stat().st_size and (out / "corpus.bin.unigrams.txt").exists()
    assert sorted(p.name for p in (out / "transcripts-lm").iterdir()) == sorted(
        f"{c}.{ext}" for c in CLIPS for ext in ("txt", "json")
    )
    assert json.loads((out / "transcripts-lm" / "fox.json").read_text())["decoder"] == "beam"
    # 4: a table with one row per decoder
    table = next(r.stdout for c, r in zip(commands, results, strict=True) if c.argv[0] == "eval")
    rows = [line.split()[0] for line in table.splitlines() if line.split()]
    assert "greedy" in rows and "beam" in rows
    # 5: the words of references.tsv as written, with times
    assert sorted(p.name for p in (out / "aligned").iterdir()) == sorted(
        f"{c}.{ext}" for c in CLIPS for ext in ("json", "srt")
    )
    refs = dict(
        row.split("\t")
        for row in (out / "examples/audio/references.tsv").read_text().split("\n")[1:-1]
    )
    fox = json.loads((out / "aligned" / "fox.json").read_text())
    assert fox["decoder"] == "align"
    assert [w["text"] for w in fox["words"]] == refs["fox.wav"].split()


def test_readme_output_sample_is_what_the_command_prints(monkeypatch):
    """The README's JSON sample is the real output of the command above it, run from the
    repository's root (lines elided with ``...`` skipped, the rest in order); on the torch
    backend with one thread, which prints the same as OpenVINO without converting first."""
    first, last = readme_section("What you get")
    section = (ROOT / "README.md").read_text().splitlines()[first:last]
    start = section.index("```console") + 1
    block = section[start : section.index("```", start)]
    assert block[0].startswith("$ w2v2 ")
    (argv, _), *_ = invocations(block[0][2:])
    sample = [line for line in block[1:] if line.strip() != "..."]
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, [*argv, "--backend", "torch", "--threads", "1"])
    assert result.exit_code == 0, result.output
    printed = iter(result.stdout.splitlines())
    for line in sample:
        assert any(line == got for got in printed), f"{line!r} is not in the output, in order"
    assert json.loads(result.stdout)["schema"] == "w2v2cli.transcript/1"
