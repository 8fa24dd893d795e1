"""The ``msp`` entry point: help, dispatch and errors for unknown commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from corpora import cli

MSP = str(Path(sys.executable).parent / "msp")


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in [*cli.COMMANDS, *cli.PIPELINE_JOBS]:
        assert name in out


def test_unknown_commands_fail_with_usage(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    assert cli.main(["pipeline", "nope"]) == 2
    assert "unknown job 'nope'" in capsys.readouterr().err


def test_every_dispatch_target_exists():
    import importlib

    for module, func, _ in cli.COMMANDS.values():
        assert callable(getattr(importlib.import_module(module), func)), module
    for module, _ in cli.PIPELINE_JOBS.values():
        assert callable(importlib.import_module(module).run), module


def test_console_script_runs_sample(tmp_path):
    out = subprocess.run(
        [MSP, "sample", "--out", str(tmp_path / "s"), "--num-scenes", "50"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "s" / "images").glob("*.jpg"))) >= 50
