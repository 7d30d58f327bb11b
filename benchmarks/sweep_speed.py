"""Sweep speed: the 12 points of examples/sweep_digits.yaml on a local Ray cluster vs one after another.

Both runs do the same work from empty folders: every point's flow steps with
train.epochs 10. The parallel figure is the wall time of `codesign sweep`'s
run_sweep, Ray start-up and shut-down included. Two sequential baselines run
the same worker function for each point in one process (imports paid once):
`sequential` with each point's declared cores (resources.num_cpus = 1: torch
on one thread and one compiler process, as in a Ray task), so `ratio`
measures the parallelism alone; `sequential_all_cores` gives every point all
cores (torch threads, `make -j` and the HLS compile pool), as a plain loop of
`codesign flow` runs would, so `ratio_vs_all_cores` is what a user gains over
that loop. The compile steps already use both cores in the latter, which is
why it is the harder figure.

Each run gets its own empty Verilator cache ($CODESIGN_SIM_CACHE): the second
run must not reuse the simulators the first one built.

Writes benchmarks/results/sweep_speed.json {parallel_seconds, sequential_seconds, ratio, points, ...}
for the default steps (up to sim if a sim step is registered, else up to
estimate) and keeps every measured step range under by_steps.
Run: .venv/bin/python benchmarks/sweep_speed.py [--epochs 10] [--steps train..estimate]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesign.sweeps.sweep import load_sweep, run_sweep  # noqa: E402
from codesign.sweeps.sweep_worker import run_point  # noqa: E402
from provenance import command_line  # noqa: E402  (benchmarks/, the script's folder)

EXAMPLE = ROOT / "examples" / "sweep_digits.yaml"


def steps_here() -> str:
    """The quick steps a point runs: up to the Verilator measurement."""
    return "train..sim"


def bench_sweep(tmp: Path, epochs: int, steps: str) -> Path:
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["base"] = str((EXAMPLE.parent / spec["base"]).resolve())
    spec["axes"]["train.epochs"] = [epochs]  # a one-value axis is an override
    spec["steps"] = steps
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def sequential(sweep_file: Path, out: Path, num_cpus: float | None = None) -> tuple[float, list[dict]]:
    """The points one after another in this process; num_cpus None: each point's declared cores."""
    sweep = load_sweep(sweep_file, out)
    cpus = sweep.spec.resources.num_cpus if num_cpus is None else num_cpus
    started = time.perf_counter()
    rows = [run_point(p.payload(), str(out / "points" / p.key), sweep.spec.retries, cpus) for p in sweep.points]
    return time.perf_counter() - started, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--steps", default=None, help="flow steps of every point (default: up to sim, else estimate)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sweep_speed.json",
                    help="the JSON written (only this run's figures: nothing merged from earlier runs)")
    args = ap.parse_args()
    default_steps = steps_here()
    steps = args.steps or default_steps
    tmp = Path(tempfile.mkdtemp(prefix="sweep_speed-"))
    load_before = os.getloadavg()[0]  # a shared machine's other work skews both figures: say how busy it was
    try:
        sweep_file = bench_sweep(tmp, args.epochs, steps)
        os.environ["CODESIGN_SIM_CACHE"] = str(tmp / "cache_parallel")  # Ray's local workers inherit it
        started = time.perf_counter()
        first_start: list[float] = []  # when the first task was submitted: Ray is up by then

        def on_event(kind: str, row: dict) -> None:
            if kind == "started" and not first_start:
                first_start.append(time.perf_counter() - started)

        summary = run_sweep(sweep_file, tmp / "parallel", on_event=on_event)
        parallel = time.perf_counter() - started
        os.environ["CODESIGN_SIM_CACHE"] = str(tmp / "cache_sequential")
        seq_seconds, seq_rows = sequential(sweep_file, tmp / "sequential")
        # the same points as a plain `codesign flow` loop would run them: every core for each point
        os.environ["CODESIGN_SIM_CACHE"] = str(tmp / "cache_all_cores")
        all_seconds, all_rows = sequential(sweep_file, tmp / "all_cores", num_cpus=len(os.sched_getaffinity(0)))
        par_rows = json.loads((tmp / "parallel" / "results.json").read_text())["rows"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "command": command_line(),
        "points": summary["points"], "steps": steps, "epochs": args.epochs,
        "cores": len(os.sched_getaffinity(0)),
        "parallel_seconds": round(parallel, 2), "sequential_seconds": round(seq_seconds, 2),
        "ratio": round(parallel / seq_seconds, 3),
        "sequential_all_cores_seconds": round(all_seconds, 2),
        "ratio_vs_all_cores": round(parallel / all_seconds, 3),
        "all_cores_done": sum(r["status"] == "done" for r in all_rows),
        "ray_startup_seconds": round(first_start[0], 2),
        "ratio_without_ray_startup": round((parallel - first_start[0]) / seq_seconds, 3),
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "parallel_done": summary["done"], "sequential_done": sum(r["status"] == "done" for r in seq_rows),
        # same configs, same seeds: the two runs must agree point for point
        "mean_point_seconds": {"parallel": round(sum(r["seconds"] for r in par_rows) / len(par_rows), 2),
                               "sequential": round(sum(r["seconds"] for r in seq_rows) / len(seq_rows), 2)},
        "same_accuracy": [r["accuracy"] for r in par_rows] == [r["accuracy"] for r in seq_rows],
        "note": "parallel includes Ray start-up/shut-down; sequential runs the same worker function in one process "
                "with each point's declared cores (torch threads and compiler jobs = num_cpus, as in a Ray task); "
                "sequential_all_cores gives every point all cores (torch threads and -j = cores), as a plain "
                "loop of `codesign flow` runs would",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
