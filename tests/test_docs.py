"""Every command and every option of the CLI is documented in the README."""

from __future__ import annotations

import pytest
import typer.main

from ckptfix.cli import app
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMAND = typer.main.get_command(app)  # typer's own click group
COMMANDS = sorted(COMMAND.commands)  # type: ignore[attr-defined]


def test_commands_are_the_expected_ones():
    assert set(COMMANDS) >= {"convert", "inspect", "verify", "train"}


@pytest.mark.parametrize("name", COMMANDS)
def test_command_and_its_options_are_in_the_readme(name):
    assert f"ckptfix {name}" in README
    cmd = COMMAND.commands[name]  # type: ignore[attr-defined]
    for param in cmd.params:
        if param.param_type_name == "option":
            longs = [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]
            assert any(o in README for o in longs), f"{name} {longs} is not in the README"
