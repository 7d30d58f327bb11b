"""Wall-clock figures live in RUN/timings.json, nowhere else in a run folder.

Two runs of the same config must be byte-identical (DESIGN.md), and seconds never are. Writers of
JSON artifacts call `write_json`, which leaves out the wall-clock keys and hands them to the step
being executed (codesign.store.runfolder), which files them under the step's name in RUN/timings.json.
Called outside a step (library use, benchmarks), the figures stay in the returned dict only.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

WALL_CLOCK_KEYS = frozenset({
    "seconds", "wall_seconds", "build_seconds", "run_seconds", "compile_seconds", "sweep_seconds",
    "buffer_table_seconds", "rerank_seconds", "points_per_second", "points_per_second_end_to_end",
    "simulated_cycles_per_second", "yosys_seconds",
})

_collectors: list[dict[str, Any]] = []


@contextlib.contextmanager
def collect() -> Iterator[dict[str, Any]]:
    """Gather the wall-clock figures recorded while the block runs."""
    found: dict[str, Any] = {}
    _collectors.append(found)
    try:
        yield found
    finally:
        _collectors.remove(found)


def record(key: str, value: Any) -> None:
    if _collectors:
        _collectors[-1][key] = value


def without_wall_clock(value: Any, where: str = "") -> Any:
    """A copy of a JSON-able value without wall-clock keys (at any depth); each one is `record`ed
    under its dotted path, prefixed with `where` (the artifact's name)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            path = f"{where}.{k}" if where else str(k)
            if k in WALL_CLOCK_KEYS and isinstance(v, (int, float)):
                record(path, v)
            else:
                out[k] = without_wall_clock(v, path)
        return out
    if isinstance(value, list):
        return [without_wall_clock(v, f"{where}.{i}") for i, v in enumerate(value)]
    return value


def write_json(path: Path, result: dict[str, Any], indent: int = 2) -> None:
    """Write an artifact's JSON without its wall-clock figures (see the module docstring)."""
    path = Path(path)
    path.write_text(json.dumps(without_wall_clock(result, path.name), indent=indent) + "\n")


def merge_file(path: Path, step: str, figures: dict[str, Any]) -> None:
    """Put one step's figures into RUN/timings.json (replacing that step's earlier entry)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[step] = figures
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(sorted(data.items())), indent=2) + "\n")
    os.replace(tmp, path)


def read(run: Path) -> dict[str, Any]:
    """RUN/timings.json, or {} (it is informational: a missing or damaged file is no error)."""
    try:
        data = json.loads((Path(run) / "timings.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
