"""Train configs and record per-exit test accuracy (and export bit-exactness) as JSON.

    .venv/bin/python benchmarks/train_accuracy.py examples/fashion_cnn.yaml \
        --json benchmarks/results/train_fashion_cnn.json
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from codesign.frontend.config import load_config
from stage_ir.errors import UserError
from codesign.frontend.export import export
from codesign.frontend.train import train
from provenance import command_line  # benchmarks/, the script's folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--keep", type=Path, help="keep the run folders under this folder")
    args = ap.parse_args()
    rows = []
    for config in args.configs:
        cfg = load_config(config)
        base = args.keep or Path(tempfile.mkdtemp())
        run = base / cfg.name
        row = {"config": str(config), "name": cfg.name, "dataset": cfg.data.dataset}
        try:
            started = time.perf_counter()
            result = train(cfg, run, quiet=True)
            report = export(run)
            row.update(status="ok", seconds=round(time.perf_counter() - started, 1), train_seconds=result["seconds"],
                       exits=[{"index": e["index"], "test_accuracy": e["test_accuracy"]} for e in result["exits"]],
                       export_mismatches=report["mismatches"], qonnx_max_abs_diff=report["qonnx_max_abs_diff"],
                       test_samples=report["samples"])
        except UserError as err:
            row.update(status="unavailable", reason=str(err))
        rows.append(row)
        print(json.dumps(row))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"command": command_line(), "machine": platform.machine(), "cpus": __import__("os").cpu_count(),
                                     "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
