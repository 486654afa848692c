"""The command line's own surface: ``--help`` lists every command in plain text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("validate", "schema", "run", "report", "compare", "sample-size")


def test_help_lists_every_command_without_markup() -> None:
    # the real entry point; the timeout only stops a hang (a busy machine may take a minute to import)
    proc = subprocess.run([sys.executable, "-m", "study", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for command in COMMANDS:
        assert any(line.strip().startswith(command + " ") for line in lines), (command, proc.stdout)
    assert "`" not in proc.stdout and "{validate,schema,run,compare,report,sample-size}" in proc.stdout
