"""yosys 0.23 `synth_xilinx -flatten` (xc7) of single RTL library modules: the table of docs/rtl.md, "Synthesis".

Each instance is one module of templates/rtl/ with the parameters below, synthesised alone
(`codesign.rtl.yosys.synth_xilinx`); ROM contents are seeded random weights (MVU, conv) or the policy tables
the tests use (threshold units: tests/test_rtl_threshold.unit_params, C = 10, 16-bit logits), so
LUT counts of ROM-heavy modules depend on them. Writes benchmarks/results/module_synth.json
{command, yosys, instances: [{name, module, params, lut, ff, carry, dsp, bram18, lutram, seconds}], seconds}.
One yosys process per instance, one after another: 16 min of wall time on the shared 2-core machine under
load ~9 (the KP = 9 convs and SWUs about 100 s each); `--only NAME,...` for a few.
Run: .venv/bin/python benchmarks/module_synth.py
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesign.rtl.yosys import require_yosys, synth_xilinx  # noqa: E402
from provenance import command_line  # noqa: E402  (benchmarks/, the script's folder)
from sim.rtl import rtl_sources  # noqa: E402
from stage_ir.kinds.rom import mvu_bias_hex, mvu_weight_hex  # noqa: E402
from tests.test_rtl_threshold import unit_params  # noqa: E402  (the units' tables, as the tests build them)

IB = WB = OB = 4


def mvu(mw: int, mh: int, pe: int, simd: int, seed: int, **extra: int) -> tuple[dict, dict[str, str]]:
    """A dense layer's parameters and ROM files: random 4-bit weights, 4-bit unsigned inputs."""
    acc_bits = WB + IB + int(np.ceil(np.log2(mw))) + 2
    rng = np.random.default_rng(seed)
    w = rng.integers(-7, 8, (mh, mw))
    b = rng.integers(-64, 64, mh)
    params = dict(MW=mw, MH=mh, PE=pe, SIMD=simd, IB=IB, IN_SIGNED=0, WB=WB, ACC_BITS=acc_bits, HAS_ACT=1,
                  OB=OB, SHIFT=4, WEIGHT_FILE="w.hex", BIAS_FILE="b.hex", **extra)
    return params, {"w.hex": mvu_weight_hex(w, pe, simd, WB), "b.hex": mvu_bias_hex(b, pe, acc_bits)}


def conv(ic: int, oc: int, h: int, k: int, pad: int, pe: int, simd: int, seed: int,
         **extra: int) -> tuple[dict, dict[str, str]]:
    """A conv layer: the MVU's weight matrix is [OC, KH*KW*IC] (stage_ir.kinds.rom.conv_weight_matrix's order)."""
    params, files = mvu(k * k * ic, oc, pe, simd, seed)
    for key in ("MW", "MH"):
        params.pop(key)
    params.update(IC=ic, OC=oc, IH=h, IW=h, KH=k, KW=k, SH=1, SW=1, PH=pad, PW=pad, **extra)
    return params, files


def swu(ic: int, h: int, k: int, pad: int, simd: int, **extra: int) -> tuple[dict, dict[str, str]]:
    return dict(IC=ic, IH=h, IW=h, KH=k, KW=k, SH=1, SW=1, PH=pad, PW=pad, SIMD=simd, IB=IB, **extra), {}


def threshold(policy: str) -> tuple[dict, dict[str, str]]:
    params, files = unit_params(policy, FIRST_EXIT=0, EXP_FILE="exp.hex", LOG_FILE="log.hex")
    return params, files


# (name in docs/rtl.md, module, (parameters, ROM files))
INSTANCES = [
    ("mvu_64x32_pe4_simd8", "cs_mvu", mvu(64, 32, 4, 8, seed=1)),
    ("mvu_64x32_pe4_simd8_rom_block", "cs_mvu", mvu(64, 32, 4, 8, seed=1, ROM_BLOCK=1)),
    ("conv_8x8x8_16_pe4_simd4", "cs_conv", conv(8, 16, 8, 3, 1, 4, 4, seed=2)),
    ("swu_8x8x8_simd4", "cs_swu", swu(8, 8, 3, 1, 4)),
    ("conv_1x12x12_4_kp9_ipb1", "cs_conv", conv(1, 4, 12, 3, 0, 4, 9, seed=3)),
    ("conv_1x12x12_4_kp9_ipb2", "cs_conv", conv(1, 4, 12, 3, 0, 4, 9, seed=3, IPB=2)),
    *[(f"swu_1x12x12_simd9_ipb{p}", "cs_swu", swu(1, 12, 3, 0, 9, IPB=p)) for p in (1, 2, 3, 4)],
    ("maxpool_8x8x16_lanes4", "cs_maxpool", (dict(C=16, IH=8, IW=8, KH=2, KW=2, SH=2, SW=2, LANES=4, EB=4), {})),
    ("width_converter_4_6", "cs_width_converter", (dict(IN_LANES=4, OUT_LANES=6, EB=4), {})),
    ("fifo_32x16", "cs_fifo", (dict(WIDTH=16, DEPTH=32), {})),
    ("split_32", "cs_split", (dict(WIDTH=32, N_OUT=2), {})),
    ("cond_buffer_32x16x4", "cs_cond_buffer", (dict(WIDTH=32, BEATS=16, DEPTH=4, META_BITS=8), {})),
    ("exit_merge_k3_16", "cs_exit_merge", (dict(K=3, WIDTH=16), {})),
    # the merge's growth with K (docs/hw_models.md, "Synthesis and refit"): 24-bit results
    *[(f"exit_merge_k{k}_24", "cs_exit_merge", (dict(K=k, WIDTH=24), {})) for k in (2, 3, 4)],
    *[(f"threshold_unit_{p}", "cs_threshold_unit", threshold(p)) for p in ("margin", "max_softmax", "entropy",
                                                                           "patience")],
    *[(f"threshold_pipe_{p}", "cs_threshold_pipe", threshold(p)) for p in ("margin", "max_softmax", "entropy",
                                                                           "patience")],
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated instance names (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "module_synth.json")
    args = ap.parse_args()
    only = [n for n in args.only.split(",") if n]
    version = subprocess.run([require_yosys(), "-V"], capture_output=True, text=True).stdout.strip()
    started = time.perf_counter()
    rows = []
    for name, module, (params, files) in INSTANCES:
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory(prefix="module_synth_") as tmp:
            # read_verilog elaborates every module once with its defaults first: their ROM files must exist
            defaults = {name: "0\n" for name in ("weights.hex", "bias.hex", "rom.hex", "exp.hex", "log.hex")}
            for fname, text in {**defaults, **files}.items():
                (Path(tmp) / fname).write_text(text)  # $readmemh reads them relative to the work folder
            r = synth_xilinx(rtl_sources(module), module, params=params, workdir=Path(tmp))
        rows.append({"name": name, "module": module, "params": params, "lut": r["lut"], "ff": r["ff"],
                     "carry": r["carry"], "dsp": r["dsp"], "bram18": r["bram"], "lutram": r["lutram"],
                     "seconds": r["seconds"]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "params"}), flush=True)
    result = {"command": command_line(), "yosys": version, "instances": rows,
              "seconds": round(time.perf_counter() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
