"""Help is complete and documented: every command and option has help text and is in the
README or a page of docs/ (the habit of sqlite-utils' tests/test_docs.py); the pages hang
together (links and anchors resolve, each page links back to the index) and the README
stays short; the Python API example runs."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from w2v2cli.cli import main

ROOT = Path(__file__).parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS = "\n".join(path.read_text() for path in DOC_FILES)


def _commands(group: click.Group, prefix: str = ""):
    for name, cmd in sorted(group.commands.items()):
        yield f"{prefix}{name}", cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{prefix}{name} ")


COMMANDS = list(_commands(main))


@pytest.mark.parametrize(("name", "cmd"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_command_has_help_and_is_in_docs(name, cmd):
    assert cmd.help, f"{name} has no help text"
    assert f"w2v2 {name}" in DOCS, f"`w2v2 {name}` is not in the README or docs/"


OPTIONS = [
    (name, opt)
    for name, cmd in COMMANDS
    for opt in cmd.params
    if isinstance(opt, click.Option) and opt.name not in ("help",)
]


@pytest.mark.parametrize(("name", "opt"), OPTIONS, ids=[f"{n}:{o.opts[0]}" for n, o in OPTIONS])
def test_option_has_help_and_is_in_docs(name, opt):
    assert opt.help, f"{name} {opt.opts[0]} has no help text"
    longest = max(opt.opts, key=len)
    assert f"`{longest}" in DOCS or f" {longest}`" in DOCS or f"{longest}," in DOCS, (
        f"{name} {longest} is not documented in the README or docs/"
    )


def test_main_help_lists_commands():
    from click.testing import CliRunner

    out = CliRunner().invoke(main, ["--help"]).output
    for name, _ in COMMANDS:
        assert name.split()[0] in out


def python_api_example() -> str:
    page = (ROOT / "docs" / "python-api.md").read_text()
    start = page.index("```python\n") + len("```python\n")
    return page[start : page.index("```", start)]


def test_python_api_example_runs(group_model, tmp_path, monkeypatch, capsys):
    """The first example of docs/python-api.md, run as written with the tiny model in place
    of the hub id, on the example clips: the library API it shows keeps working."""
    import shutil

    examples = Path(__file__).parent.parent / "examples" / "audio"
    shutil.copy(examples / "stella.mp3", tmp_path / "talk.mp3")
    (tmp_path / "recordings").mkdir()
    for name in ("fox.wav", "journey.flac", "stella.mp3"):
        shutil.copy(examples / name, tmp_path / "recordings" / name)
    # The example manifest, its audio paths relative to the manifest's folder.
    rows = (examples / "references.tsv").read_text().splitlines()
    (tmp_path / "test.tsv").write_text(
        "\n".join([rows[0]] + [f"recordings/{row}" for row in rows[1:]]) + "\n"
    )
    code = python_api_example()
    assert '"facebook/wav2vec2-base-960h"' in code
    monkeypatch.chdir(tmp_path)
    exec(
        compile(
            code.replace('"facebook/wav2vec2-base-960h"', repr(str(group_model))),
            "docs/python-api.md",
            "exec",
        ),
        {},
    )
    lines = capsys.readouterr().out.splitlines()
    assert "3 0" in lines  # three files done, none failed
    assert lines[-1].startswith("WER ") and lines[-1].endswith("%")
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [
        "fox.json",
        "fox.srt",
        "journey.json",
        "journey.srt",
        "stella.json",
        "stella.srt",
    ]


# --- The pages hang together -----------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but ``-`` and ``_`` dropped,
    spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    fence = False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        m = re.match(r"#{1,6} (.+)", line)
        if m and not fence:
            base = slug(m.group(1))
            name, n = base, 0
            while name in found:  # repeated headings get -1, -2, ...
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def links(path: Path):
    """(target, anchor) of every relative link outside code blocks."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        yield file, anchor


LINKED = [(p, f, a) for p in DOC_FILES for f, a in links(p)]


@pytest.mark.parametrize(
    ("page", "file", "anchor"),
    LINKED,
    ids=[f"{p.relative_to(ROOT)}->{f}#{a}" for p, f, a in LINKED],
)
def test_link_resolves(page, file, anchor):
    target = (page.parent / file).resolve() if file else page
    assert target.exists(), f"{page.relative_to(ROOT)}: {file} does not exist"
    if anchor:
        assert target.suffix == ".md", f"{page.relative_to(ROOT)}: an anchor into {file}"
        assert anchor in anchors(target), f"{page.relative_to(ROOT)}: no #{anchor} in {file}"


def test_links_are_found():
    assert any(a for _, _, a in LINKED) and len(LINKED) > 40


PAGES = [p for p in DOC_FILES if p.parent.name == "docs" and p.name != "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_has_summary_and_links_to_the_index(page):
    """Every page opens with its title and a one-line summary, links back to the index, and
    is listed in the index and in the README's table."""
    lines = page.read_text().splitlines()
    assert lines[0].startswith("# ") and not lines[1].strip(), f"{page.name}: no title line"
    assert lines[2].strip() and not lines[3].strip(), f"{page.name}: no one-line summary"
    assert "](README.md)" in "\n".join(lines[:6]), f"{page.name}: no link back to the index"
    assert f"]({page.name})" in (ROOT / "docs" / "README.md").read_text()
    assert f"](docs/{page.name})" in (ROOT / "README.md").read_text()


def test_readme_stays_short():
    """The README is the front door (what, install, quick start, examples, links), read in
    a couple of minutes; subjects get a page under docs/."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 220, f"README.md has {len(lines)} lines: move detail to docs/"


def test_readme_contributor_setup_is_two_commands():
    """A contributor's set-up on a fresh machine stays two commands: install, then the
    whole suite."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Contributing") :]
    block = section[section.index("```sh\n") + len("```sh\n") :]
    assert block[: block.index("```")].splitlines() == ["bash install.sh", "python3 -m pytest"]


def test_repository_paths_named_in_the_docs_exist():
    """A module, test or script the docs name by path still exists (modules move)."""
    pattern = re.compile(r"(?<![\w/-])(?:w2v2cli|tests|benchmarks|examples)/[\w/.-]+\.(?:py|sh)\b")
    named = {m.group(0) for m in pattern.finditer(DOCS)}
    assert "w2v2cli/errors.py" in named  # the pattern finds what it is meant to
    assert sorted(p for p in named if not (ROOT / p).exists()) == []
