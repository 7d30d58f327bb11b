"""Run Debian's yosys `synth_xilinx` on Verilog and count what it maps to.

yosys' own `stat -json` is parsed rather than its text report; `-noiopad`
keeps I/O buffers out of per-module counts (a stage is not a chip).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

from stage_ir.errors import UserError

FAMILIES = {"xc7": "xc7", "xcup": "xcup", "xcu": "xcu"}


def require_yosys() -> str:
    path = shutil.which("yosys")
    if path is None:
        raise UserError("yosys not found; install it with apt-get install yosys (Debian's yosys 0.23; "
                        "the PyPI wasm build is unreliable here)")
    return path


def count_cells(cells: Mapping[str, int]) -> dict[str, int]:
    """LUT, FF, DSP, BRAM (in 18 Kb halves), CARRY and LUTRAM counts from yosys cell types."""
    def total(pred) -> int:
        return int(sum(n for c, n in cells.items() if pred(c)))

    return {
        "lut": total(lambda c: c.startswith("LUT") and c[3:].isdigit()),
        "ff": total(lambda c: c.startswith("FD")),
        "dsp": total(lambda c: c.startswith("DSP48")),
        "bram": total(lambda c: c.startswith("RAMB18")) + 2 * total(lambda c: c.startswith("RAMB36")),
        "carry": total(lambda c: c.startswith("CARRY")),
        "lutram": total(lambda c: c.startswith(("RAM32", "RAM64", "RAM128", "RAM256", "SRL"))),
        "mux": total(lambda c: c.startswith("MUXF")),
    }


def _param(value: int | str) -> str:
    return f'"{value}"' if isinstance(value, str) else str(int(value))


def synth_xilinx(sources: Sequence[Path], top: str, family: str = "xc7", params: Mapping[str, int | str] | None = None,
                 workdir: Path | None = None, timeout: int = 1800) -> dict:
    """Synthesise `top` from `sources`; returns counts, the raw cell histogram and seconds.

    `workdir` is where $readmemh finds its init files (relative paths resolve there).
    """
    yosys = require_yosys()
    # string parameters (ROM file names) go to chparam in double quotes. Not read_verilog -defer plus
    # hierarchy -chparam: yosys 0.23's hierarchy cannot decode a string value. So every module is
    # elaborated once with its defaults first, and the ROM files its defaults name must exist
    chparams = " ".join(f"-set {k} {_param(v)}" for k, v in (params or {}).items())
    reads = "; ".join(f"read_verilog -sv {Path(s).resolve()}" for s in sources)
    with tempfile.TemporaryDirectory() as tmp:
        stat = Path(tmp) / "stat.json"
        script = (f"{reads}; " + (f"chparam {chparams} {top}; " if chparams else "")
                  + f"synth_xilinx -flatten -noiopad -family {FAMILIES.get(family, family)} -top {top}; "
                  + f"tee -q -o {stat} stat -json")
        started = time.perf_counter()
        proc = subprocess.run([yosys, "-q", "-p", script], cwd=workdir or tmp, capture_output=True, text=True,
                              timeout=timeout)
        seconds = time.perf_counter() - started
        if proc.returncode != 0 or not stat.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"yosys failed on {top}: {' | '.join(tail)}")
        data = json.loads(stat.read_text())
    cells = data["design"]["num_cells_by_type"]
    return {"top": top, **count_cells(cells), "cells": dict(sorted(cells.items())), "seconds": round(seconds, 2)}
