"""Help is complete and documented: every command and option has help text and is in the
README (the habit of sqlite-utils' tests/test_docs.py)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from w2v2cli.cli import main

README = (Path(__file__).parent.parent / "README.md").read_text()


def _commands(group: click.Group, prefix: str = ""):
    for name, cmd in sorted(group.commands.items()):
        yield f"{prefix}{name}", cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{prefix}{name} ")


COMMANDS = list(_commands(main))


@pytest.mark.parametrize(("name", "cmd"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_command_has_help_and_is_in_readme(name, cmd):
    assert cmd.help, f"{name} has no help text"
    assert f"w2v2 {name}" in README, f"`w2v2 {name}` is not in the README"


OPTIONS = [
    (name, opt)
    for name, cmd in COMMANDS
    for opt in cmd.params
    if isinstance(opt, click.Option) and opt.name not in ("help",)
]


@pytest.mark.parametrize(("name", "opt"), OPTIONS, ids=[f"{n}:{o.opts[0]}" for n, o in OPTIONS])
def test_option_has_help_and_is_in_readme(name, opt):
    assert opt.help, f"{name} {opt.opts[0]} has no help text"
    longest = max(opt.opts, key=len)
    assert f"`{longest}" in README or f" {longest}`" in README or f"{longest}," in README, (
        f"{name} {longest} is not documented in the README"
    )


def test_main_help_lists_commands():
    from click.testing import CliRunner

    out = CliRunner().invoke(main, ["--help"]).output
    for name, _ in COMMANDS:
        assert name.split()[0] in out


def readme_python_example() -> str:
    section = README[README.index("## Python API") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


def test_readme_python_example_runs(group_model, tmp_path, monkeypatch, capsys):
    """The README's Python example, run as written with the tiny model in place of the hub
    id, on the example clips: the library API it shows keeps working."""
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
    code = readme_python_example()
    assert '"facebook/wav2vec2-base-960h"' in code
    monkeypatch.chdir(tmp_path)
    exec(
        compile(
            code.replace('"facebook/wav2vec2-base-960h"', repr(str(group_model))),
            "README.md",
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
