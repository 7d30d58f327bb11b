"""The headline: early-exit design vs no-exit network at equal resources, both measured in Verilator.

For each network: train (or reuse), calibrate, evaluate, export, DSE under a
resource budget; generate (a) the no-exit network (final exit only, the DSE's
baseline folding) and (b) the early-exit design the DSE chose; run both in
Verilator on the real test split in dataset order (repeated until at least
--min-samples samples: throughput is a steady-state figure, and one pass of
digits' 449 samples is dominated by the ~800-cycle drain of the last
continuing sample through stage 1); report measured throughputs, the gain, the ideal bound C / sum_k q_k C_k at the measured exit
rates, the DSE's predicted gain, accuracy and resources.

    .venv/bin/python benchmarks/ee_vs_baseline.py --json benchmarks/results/ee_vs_baseline.json \
        [--keep runs/bench] [--configs examples/lenet_mnist.yaml examples/fashion_cnn.yaml]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from codesign.baseline import write_baseline
from codesign.calibrate_run import calibrate_run, run_dataset
from codesign.config import load_config
from codesign.errors import UserError
from codesign.estimate_run import dse_run
from codesign.evaluate import evaluate_run
from codesign.export import export
from codesign.ir import load_design
from codesign.rtl import generate_rtl
from codesign.sim_run import run_traffic
from codesign.train import train

ATHEENA = {"gain_range": [2.00, 2.78], "network": "B-LeNet", "bits": 16, "device": "xc7z045 (ZC706)"}
RESOURCES = ("lut", "ff", "dsp", "bram")


def ideal_gain(design, reach: list[float]) -> float:
    """C / sum_k q_k C_k: no-exit MACs over the mean MACs per sample at these reach fractions."""
    per_stage = [s.macs["backbone"] + s.macs["head"] for s in design.stages]
    return design.macs_no_exit / float(np.dot(reach, per_stage))


def prepare(config: Path, run: Path, device: str, budget: float) -> dict:
    cfg = load_config(config)
    if not (run / "model.pt").is_file():
        train(cfg, run, quiet=True)
    calibrate_run(run, cfg.policy.kind, accuracy_delta=cfg.policy.accuracy_delta)
    evaluate_run(run)
    export(run)
    return dse_run(run, device, budget=budget)


def measure(config: Path, base: Path, device: str, budget: float, min_samples: int = 2000) -> dict:
    cfg = load_config(config)
    run = base / f"{cfg.name}_{device}"
    started = time.perf_counter()
    dse = prepare(config, run, device, budget)
    generate_rtl(run)
    n_test = len(run_dataset(run).test.x)
    passes = max(1, math.ceil(min_samples / n_test))
    # the test split in dataset order, real decisions, `passes` times over
    ee = run_traffic(run, "data", samples=passes * n_test)
    single = run_traffic(run, "data", write=False) if passes > 1 else ee
    bl_run = write_baseline(run, dse["baseline"]["folding"])
    generate_rtl(bl_run)
    bl = run_traffic(bl_run, "data", samples=passes * n_test)
    design = load_design(run)
    fractions = [e["count"] / ee["samples"] for e in ee["exits"]]
    reach = list(np.cumsum([1.0] + [-f for f in fractions[:-1]]))
    measured_gain = ee["throughput_samples_per_cycle"] / bl["throughput_samples_per_cycle"]
    bound = ideal_gain(design, reach)
    return {
        "name": cfg.name, "config": str(config), "dataset": cfg.data.dataset, "device": dse["device"],
        "budget": budget, "test_samples": n_test, "passes": passes, "simulated_samples": ee["samples"],
        "measured_gain": measured_gain, "ideal_gain": bound, "predicted_gain": dse["predicted_gain"],
        "measured_over_ideal": measured_gain / bound,
        "throughput_ee_samples_per_cycle": ee["throughput_samples_per_cycle"],
        "throughput_baseline_samples_per_cycle": bl["throughput_samples_per_cycle"],
        "predicted_ee_samples_per_cycle": ee["predicted_throughput_samples_per_cycle"],
        "predicted_baseline_samples_per_cycle": bl["predicted_throughput_samples_per_cycle"],
        "model_error_ee": ee["model_error"], "model_error_baseline": bl["model_error"],
        "throughput_ee_single_pass_samples_per_cycle": single["throughput_samples_per_cycle"],
        "exit_fractions": fractions,
        "accuracy_ee": ee["accuracy"],  # of the classes the RTL produced
        "accuracy_baseline": bl["accuracy"],
        "resources_ee": {r: dse["chosen"][r] for r in RESOURCES},
        "resources_baseline": {r: dse["baseline"][r] for r in RESOURCES},
        "resources_source": "analytical model (hw_models), not synthesis",
        "scoreboard_ee": ee["scoreboard"], "scoreboard_baseline": bl["scoreboard"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--keep", type=Path, default=Path("runs/bench"))
    ap.add_argument("--configs", nargs="+",
                    default=["examples/lenet_mnist.yaml", "examples/fashion_cnn.yaml"],
                    help="config files, each optionally CONFIG@DEVICE or CONFIG@DEVICE@BUDGET "
                         "(defaults: --device, --budget)")
    ap.add_argument("--fallback", type=Path, default=Path("examples/digits_cnn.yaml"),
                    help="run instead of a config whose data set is absent")
    ap.add_argument("--device", default="xc7z045")
    ap.add_argument("--budget", type=float, default=0.7)
    ap.add_argument("--min-samples", type=int, default=2000,
                    help="repeat the test split (in order) until this many samples are simulated")
    args = ap.parse_args()
    rows, skipped = [], []
    for item in args.configs:
        config, _, rest = item.partition("@")
        device, _, budget = rest.partition("@")
        config = Path(config)
        try:
            rows.append(measure(config, args.keep, device or args.device, float(budget or args.budget),
                                args.min_samples))
        except UserError as err:
            skipped.append({"config": str(config), "reason": str(err)})
        print(json.dumps(rows[-1] if rows else skipped[-1]))
    if skipped and not any(r["config"] == str(args.fallback) for r in rows):
        rows.append(measure(args.fallback, args.keep, args.device, args.budget, args.min_samples))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"networks": rows, "skipped": skipped, "atheena": ATHEENA,
                                     "cpus": os.cpu_count()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
