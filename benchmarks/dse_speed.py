"""DSE speed on a digits-CNN-sized design: 2 stages, 3 conv/dense layers each.

Writes benchmarks/results/dse_speed.json {points_per_second, seconds, ...}.
Run: .venv/bin/python benchmarks/dse_speed.py
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hw_models.dse import run_dse  # noqa: E402
from stage_ir import Design  # noqa: E402
from provenance import command_line  # noqa: E402  (benchmarks/, the script's folder)


def _t(shape, bits=4, signed=False):
    return {"shape": shape, "bits": bits, "frac": 0, "signed": signed}


def _conv(name, ic, oc, h):
    return {"name": name, "kind": "conv2d", "input": _t([ic, h, h]), "output": _t([oc, h, h]),
            "weight": f"{name}_w.npy", "bias": f"{name}_b.npy",
            "in_channels": ic, "out_channels": oc, "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1],
            "w_bits": 4, "w_frac": 3, "acc_bits": 16, "act": {"bits": 4, "frac": 2, "shift": 3}}


def _dense(name, i, o, act=True):
    return {"name": name, "kind": "dense", "input": _t([i]), "output": _t([o], 4 if act else 16, not act),
            "weight": f"{name}_w.npy", "bias": f"{name}_b.npy",
            "in_features": i, "out_features": o, "w_bits": 4, "w_frac": 3, "acc_bits": 16,
            "act": {"bits": 4, "frac": 2, "shift": 3} if act else None}


def digits_cnn() -> Design:
    """8x8 digits: conv16-conv16-pool | head dense; conv32-conv32 | dense64-dense10."""
    s0 = {"index": 0, "input": _t([1, 8, 8]),
          "layers": [_conv("s0_c0", 1, 16, 8), _conv("s0_c1", 16, 16, 8),
                     {"name": "s0_p", "kind": "maxpool2d", "input": _t([16, 8, 8]), "output": _t([16, 4, 4]),
                      "kernel": [2, 2], "stride": [2, 2]}],
          "features": _t([16, 4, 4]),
          "head": [{"name": "s0_f", "kind": "flatten", "input": _t([16, 4, 4]), "output": _t([256])},
                   _dense("s0_h", 256, 10, act=False)],
          "logits": _t([10], 16, True), "buffer_depth": 16, "macs": {"backbone": 0, "head": 0}}
    s1 = {"index": 1, "input": _t([16, 4, 4]),
          "layers": [_conv("s1_c0", 16, 32, 4), _conv("s1_c1", 32, 32, 4),
                     {"name": "s1_f", "kind": "flatten", "input": _t([32, 4, 4]), "output": _t([512])}],
          "features": None, "head": [_dense("s1_d", 512, 64), _dense("s1_h", 64, 10, act=False)],
          "logits": _t([10], 16, True), "macs": {"backbone": 0, "head": 0}}
    return Design.model_validate({"schema": 1, "name": "digits_cnn", "num_classes": 10, "input": _t([1, 8, 8]), "stages": [s0, s1],
            "policy": {"kind": "max_softmax", "thresholds": [300], "tables": {"exits": [{"p": 8, "n": 32, "s": 0}]}},
            "clock_ns": 10.0, "device": "xc7z045", "macs_no_exit": 0})


CALIBRATION = [{"threshold": 100 * i, "exit_fractions": [f, 1 - f], "accuracy": 0.98 - 0.1 * f ** 3}
               for i, f in enumerate([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])]


def main() -> None:
    t0 = time.perf_counter()
    r = run_dse(digits_cnn(), "xc7z045", budget=0.7, exit_points=CALIBRATION, min_accuracy=0.93,
                burst_length=8, final_accuracy=0.98)
    wall = time.perf_counter() - t0
    out = {"command": command_line(), "design": "digits_cnn (2 stages, 3 conv/dense layers each)", "device": "xc7z045",
           "points_evaluated": r["points_evaluated"], "points_per_second": r["points_per_second"],
           "points_per_second_end_to_end": r["points_per_second_end_to_end"],
           "buffer_table_seconds": r["buffer_table_seconds"], "rerank_seconds": r["rerank_seconds"],
           "dse_seconds": r["seconds"],
           "seconds": wall, "predicted_gain": r["predicted_gain"],
           "chosen_throughput_samples_per_cycle": r["chosen"]["throughput_samples_per_cycle"],
           "baseline_throughput_samples_per_cycle": r["baseline"]["throughput_samples_per_cycle"]}
    path = ROOT / "benchmarks" / "results" / "dse_speed.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
