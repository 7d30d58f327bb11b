"""Train, calibrate (accuracy target) and evaluate configs; record exit fractions and accuracy as JSON.

    .venv/bin/python benchmarks/early_exit_accuracy.py examples/lenet_mnist.yaml \
        --delta 1.0 --json benchmarks/results/early_exit_lenet_mnist.json
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from codesign.frontend.calibrate_run import calibrate_run
from codesign.frontend.config import load_config
from stage_ir.errors import UserError
from codesign.frontend.evaluate import evaluate_run
from codesign.frontend.train import train
from provenance import command_line  # benchmarks/, the script's folder

# BranchyNet (Teerapittayanon et al., 2016), B-LeNet on MNIST: 94.3 % of samples at the first exit, 99.25 % accuracy.
BRANCHYNET_BLENET = {"first_exit_fraction": 0.943, "accuracy": 0.9925, "bits": 32}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="+", type=Path)
    ap.add_argument("--delta", type=float, default=1.0, help="accuracy target: pp below the final exit")
    ap.add_argument("--policy", default="max_softmax")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--keep", type=Path, help="keep the run folders here (reused when already trained)")
    args = ap.parse_args()
    rows = []
    for config in args.configs:
        cfg = load_config(config)
        run = (args.keep or Path(tempfile.mkdtemp())) / cfg.name
        row = {"config": str(config), "name": cfg.name, "dataset": cfg.data.dataset, "policy": args.policy,
               "accuracy_delta_pp": args.delta, "weight_bits": cfg.quant.weight_bits, "act_bits": cfg.quant.act_bits}
        try:
            started = time.perf_counter()
            if not (run / "model.pt").is_file():
                train(cfg, run, quiet=True)
            cal = calibrate_run(run, args.policy, accuracy_delta=args.delta)
            ev = evaluate_run(run)
            row.update(status="ok", seconds=round(time.perf_counter() - started, 1), thresholds=cal["thresholds"],
                       test_samples=ev["samples"], overall_accuracy=ev["overall_accuracy"],
                       final_accuracy=ev["final_accuracy"], mac_fraction=ev["mac_fraction"],
                       exits=[{k: e[k] for k in ("index", "exit_fraction", "accuracy_alone", "accuracy_of_exited")}
                              for e in ev["exits"]],
                       float_integer_agreement=ev["float_integer_agreement"])
            if cfg.data.dataset == "mnist":
                row["branchynet_blenet"] = BRANCHYNET_BLENET
        except UserError as err:
            row.update(status="unavailable", reason=str(err))
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "exits"}))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"command": command_line(), "cpus": os.cpu_count(), "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
