"""The `seance` command group: lazy parts, and a part missing from an installation."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from seance import cli


def test_lists_every_part() -> None:
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0
    for name in ("gateway", "secrets", "synth", "deploy"):
        assert name in result.output


def test_a_part_left_out_of_the_installation_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # the container image leaves seance.deploy out; a command from it must not print a traceback
    monkeypatch.setitem(cli.COMMANDS, "synth", "seance.not_installed.cli:synth")
    result = CliRunner().invoke(cli.main, ["synth"])
    assert result.exit_code == 2
    assert "'seance synth' is not part of this installation" in result.output
    assert "Traceback" not in result.output



def _keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def _click_abort() -> None:  # what click.prompt and click.confirm raise on Ctrl-C
    raise click.Abort


ctrl_c = click.Command("ctrl-c", callback=_keyboard_interrupt)
abort = click.Command("abort", callback=_click_abort)


@pytest.mark.parametrize("command", ["ctrl_c", "abort"])
def test_ctrl_c_is_one_error_line_not_aborted(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.setitem(cli.COMMANDS, "synth", f"{__name__}:{command}")
    result = CliRunner().invoke(cli.main, ["synth"])
    assert result.exit_code == 130
    assert result.output == "Error: interrupted (Ctrl-C); nothing more was done\n"
