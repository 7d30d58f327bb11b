"""HLS C simulation speed: the digits MLP's whole test split through the generated top.

Trains and exports examples/digits_mlp.yaml into a scratch folder (or uses RUN if given),
calibrates max_softmax (1 pp), generates RUN/hls and runs the g++ C simulation.
Writes benchmarks/results/hls_csim_speed.json {compile_seconds, run_seconds, samples, ...}.
Run: .venv/bin/python benchmarks/hls_csim_speed.py [RUN]
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesign import hls  # noqa: E402
from codesign.frontend.calibrate_run import calibrate_run  # noqa: E402
from provenance import command_line  # noqa: E402  (benchmarks/, the script's folder)


def trained_run(folder: Path) -> Path:
    from codesign.frontend.config import load_config
    from codesign.frontend.export import export
    from codesign.frontend.train import train

    run = folder / "digits_mlp"
    train(load_config(ROOT / "examples" / "digits_mlp.yaml"), run, quiet=True)
    export(run)
    return run


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(sys.argv[1]) if len(sys.argv) > 1 else trained_run(Path(tmp))
        calibrate_run(run, "max_softmax", accuracy_delta=1.0)
        start = time.perf_counter()
        report = hls.hls_command(run, csim=True, part=None, clock_ns=None, io="io_parallel")
        total = time.perf_counter() - start
    sim = report["csim"]
    result = {
        "command": command_line(),
        "design": "digits_mlp",
        "samples": sim["samples"],
        "mismatches": sim["mismatches"],
        "compile_seconds": sim["compile_seconds"],
        "run_seconds": sim["run_seconds"],
        "total_seconds": round(total, 3),  # hls4ml conversion + templates + compile + both csim runs
        "exits": sim["exits"],
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    out = ROOT / "benchmarks" / "results" / "hls_csim_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
