"""Verilator build time of the generated digits-MLP early-exit RTL and simulation time of its test split.

Trains, exports and calibrates examples/digits_mlp.yaml into a temporary run
(or uses --run RUN, calibrated), generates RUN/rtl, builds it in an empty
Verilator cache (a cold build: the Verilator runtime objects are compiled
too) and simulates the whole test split, checking it against the integer
reference. Writes benchmarks/results/rtl_speed.json
{build_seconds, run_seconds, samples, mismatches, simulated_cycles, cycles_per_second, ...}.
Targets: build < 60 s, test-split simulation < 30 s.
Run: .venv/bin/python benchmarks/rtl_speed.py [--run RUN]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from provenance import command_line  # noqa: E402  (benchmarks/, the script's folder)


def trained_mlp(folder: Path) -> Path:
    from conftest import example  # the test suite's example loader

    from codesign.frontend.calibrate_run import calibrate_run
    from codesign.frontend.config import parse_config
    from codesign.frontend.export import export
    from codesign.frontend.train import train

    run = folder / "digits_mlp"
    train(parse_config(example("digits_mlp")), run, quiet=True)
    export(run)
    calibrate_run(run, "max_softmax", accuracy_delta=1.0)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a calibrated digits-MLP run (default: train one)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rtl_speed.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rtl_speed_") as tmp:
        tmp = Path(tmp)
        run = args.run or trained_mlp(tmp)
        os.environ["CODESIGN_SIM_CACHE"] = str(tmp / "verilator_cache")  # cold build

        from codesign.rtl import build_sim, generate_rtl, verify_rtl

        t0 = time.perf_counter()
        generate_rtl(run)
        generate_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_sim(run)
        build_seconds = time.perf_counter() - t0
        report = verify_rtl(run)  # cached build now: its build_seconds is the cache look-up
        result = {
            "command": command_line(),
            "design": "digits_mlp",
            "generate_seconds": round(generate_seconds, 3),
            "build_seconds": round(build_seconds, 3),
            "run_seconds": report["run_seconds"],
            "samples": report["samples"],
            "mismatches": report["mismatches"],
            "simulated_cycles": report["cycles"],
            "cycles_per_sample": report["cycles_per_sample"],
            "cycles_per_second": round(report["cycles"] / report["run_seconds"]),
            "targets": {"build_seconds": 60, "run_seconds": 30},
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
