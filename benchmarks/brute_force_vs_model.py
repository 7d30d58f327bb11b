"""hw_models' system throughput model against the independent brute-force simulation of tests/test_hw_system.py.

Ten two-stage cases (stage 0 takes 2 cycles a sample, stage 1 `stage1_cycles`; exit rate, buffer depth, burst
length L), under the continue-only buffer and the in-order buffer with decision latency 4; the brute force runs
16000 cycles x 24..160 replicas per case with a control variate (tests/test_hw_system.py, `_brute_force`).
Writes benchmarks/results/brute_force_vs_model.json {command, seed, rows: [{rules, exit_rate, stage1_cycles,
depth, burst, infinite, model, brute_force, diff}], max_abs_diff, seconds}; diff = (model - brute force) / brute force.
About 15 s. Run: .venv/bin/python benchmarks/brute_force_vs_model.py
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance import command_line  # noqa: E402  (benchmarks/, the script's folder)
from tests.test_hw_system import comparison_rows  # noqa: E402  (the brute force lives with its tests)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "brute_force_vs_model.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = comparison_rows(args.seed)
    result = {"command": command_line(), "seed": args.seed,
              "rows": rows, "max_abs_diff": max(abs(r["diff"]) for r in rows),
              "seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
