"""One sweep point on one worker: run the flow steps into the point's folder, return its results row.

This module imports neither ray nor click, so the sequential baseline of
benchmarks/sweep_speed.py calls `run_point` directly, and a Ray task is just
`ray.remote(run_point)`. Everything a rerun or a retry needs lives in the
point folder (shared storage on a cluster): `attempts.json` counts every start
of the point, including starts after a worker died, and `done.json`, written
last, marks the point complete and holds its row.
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from sim import jobs

DONE = "done.json"
ATTEMPTS = "attempts.json"
ERROR = "error.json"
POINT_CONFIG = "point.yaml"  # not config.yaml: the train step writes that one


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader (or a killed writer) never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def done_row(run: Path) -> dict | None:
    """The row of a completed point, or None if the point has not completed."""
    return read_json(run / DONE)


def attempts_so_far(run: Path) -> int:
    return int((read_json(run / ATTEMPTS) or {}).get("attempts", 0))


def _start_attempt(run: Path) -> int:
    """Count this start; the pid lets an operator (or a test) find the worker running the point."""
    n = attempts_so_far(run) + 1
    write_atomic(run / ATTEMPTS, json.dumps({"attempts": n, "pid": os.getpid(), "host": socket.gethostname()}))
    return n


def _write_point_config(run: Path, config: dict) -> Path:
    # rewrite only on change: a fresh mtime would make the flow retrain on every retry
    path = run / POINT_CONFIG
    text = yaml.safe_dump(config, sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        write_atomic(path, text)
    return path


def _failed_step(message: str, selected: list[str], finished: list[str]) -> str:
    m = re.search(r"at step '([^']+)'", message)
    if m:
        return m.group(1)
    rest = [s for s in selected if s not in finished]
    return rest[0] if rest else ""


def collect_metrics(run: Path) -> dict[str, Any]:
    """The figures of one run folder that a sweep compares (None where a step has not run)."""
    ev = read_json(run / "eval.json") or {}
    dse = read_json(run / "dse.json") or {}
    est = read_json(run / "estimate.json") or {}
    sim = read_json(run / "sim" / "data.json") or {}
    chosen = dse.get("chosen") or {}
    # estimate.json describes the design the dse step chose (flow order: dse, then estimate)
    totals = est.get("totals") or chosen
    predicted = est.get("throughput_samples_per_cycle", chosen.get("throughput_samples_per_cycle"))
    return {
        "accuracy": ev.get("overall_accuracy"),
        "final_accuracy": ev.get("final_accuracy"),
        "exit_fractions": [e["exit_fraction"] for e in ev.get("exits", [])] or None,
        "mac_fraction": ev.get("mac_fraction"),
        "predicted_throughput": predicted,
        "measured_throughput": sim.get("throughput_samples_per_cycle"),
        **{k: totals.get(k) for k in ("lut", "ff", "dsp", "bram")},
        "predicted_gain": dse.get("predicted_gain"),
        "measured_gain": sim.get("measured_gain"),
    }


def run_point(point: dict, run_dir: str, retries: int, num_cpus: float = 1.0) -> dict:
    """Run the point's steps into run_dir, retrying a failing step up to `retries` times.

    Returns the point's row (status done or failed); never raises for a step
    error, so that Ray retries the task only when its worker dies.
    """
    from codesign.commands.flow import run_flow

    # a task owns num_cpus cores: more torch threads or compiler processes would fight the neighbouring tasks
    cores = max(1, int(num_cpus))
    os.environ[jobs.ENV] = str(cores)
    try:
        import torch

        torch.set_num_threads(cores)
    except ImportError:
        pass
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    config = _write_point_config(run, point["config"])
    steps: list[str] = point["steps"]
    started = time.perf_counter()
    error_step, error = "", ""
    for _ in range(retries + 1):
        _start_attempt(run)
        finished: list[str] = []
        try:
            run_flow(config, run, ",".join(steps), on_step=lambda r: finished.append(r.name))
        except Exception as err:  # UserError, StepFailed or anything else: record it, try again
            error = str(err)
            error_step = _failed_step(error, steps, finished)
            continue
        error_step, error = "", ""
        break
    row = {"point": point["index"], "key": point["key"], **point["axes"],
           "status": "failed" if error else "done", "attempts": attempts_so_far(run),
           **collect_metrics(run), "seconds": round(time.perf_counter() - started, 2),
           "error_step": error_step, "error": error, "run": str(run)}
    if error:
        write_atomic(run / ERROR, json.dumps(row, indent=1))
    else:
        (run / ERROR).unlink(missing_ok=True)
        write_atomic(run / DONE, json.dumps(row, indent=1))  # last: marks the point complete
    return row
