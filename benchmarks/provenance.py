"""The command a benchmark JSON records (its `command` key): what to rerun to reproduce it.

docs/RESULTS.md quotes this command beside the figures; benchmarks/check_docs_figures.py fails when a doc
quotes a JSON's figures but not the command the JSON recorded.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def command_line(argv: list[str] | None = None, script: str | None = None) -> str:
    """`.venv/bin/python benchmarks/<script>.py ARGS` as it was run (ARGS shell-quoted)."""
    path = Path(script or sys.argv[0]).resolve()
    try:
        shown = path.relative_to(ROOT).as_posix()
    except ValueError:
        shown = path.as_posix()
    args = sys.argv[1:] if argv is None else list(argv)
    return shlex.join([".venv/bin/python", shown, *args])
