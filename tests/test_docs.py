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


@pytest.mark.parametrize(("name", "opt"), OPTIONS,
                         ids=[f"{n}:{o.opts[0]}" for n, o in OPTIONS])
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
