"""DSE of the real digits CNN (trained, calibrated, exported) on xc7z020: wall time and design points per second.

    .venv/bin/python benchmarks/dse_digits_cnn.py --json benchmarks/results/dse_digits_cnn.json [--keep runs/bench]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from codesign.frontend.calibrate_run import calibrate_run
from codesign.frontend.config import load_config
from codesign.commands.estimate_run import dse_run
from codesign.frontend.evaluate import evaluate_run
from codesign.frontend.export import export
from codesign.frontend.train import train
from provenance import command_line  # benchmarks/, the script's folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--keep", type=Path, default=Path("runs/bench"))
    ap.add_argument("--device", default="xc7z020")
    args = ap.parse_args()
    cfg = load_config("examples/digits_cnn.yaml")
    run = args.keep / "dse_digits_cnn"
    if not (run / "design.json").is_file():
        train(cfg, run, quiet=True)
        calibrate_run(run, "max_softmax", accuracy_delta=1.0)
        evaluate_run(run)
        export(run)
    started = time.perf_counter()
    r = dse_run(run, args.device)  # the whole command: calibration curve, sweep, re-ranking, plots, IR update
    wall = time.perf_counter() - started
    out = {"command": command_line(), "design": "digits_cnn (examples/digits_cnn.yaml, trained)", "device": r["device"],
           "wall_seconds": round(wall, 3), "points_evaluated": r["points_evaluated"],
           "points_per_second": r["points_per_second"], "points_per_second_end_to_end": r["points_per_second_end_to_end"],
           "predicted_gain": r["predicted_gain"]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
