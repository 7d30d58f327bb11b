"""`codesign hls`: generate RUN/hls/ and, with --csim, check it in C simulation."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from stage_ir.errors import UserError, verification_failed
from codesign.store.scratch import replace_dir
from codesign.store.timings import write_json
import stage_ir
from codesign.hls.project import HLS_DIR, IO_TYPES, StageProject, TOP_DIR, convert_stage, require_inputs, resolve_part
from codesign.hls.top import test_split, write_tb_data, write_top
from codesign.hls.csim import run_c_simulation


def generate(run: Path, part: str | None = None, clock_ns: float | None = None, io: str = "io_parallel",
             out: Path | None = None) -> tuple[stage_ir.Design, Path, dict, list[StageProject]]:
    """Write the HLS projects of RUN into `out` (default RUN/hls); return what C simulation needs."""
    run = Path(run)
    if io not in IO_TYPES:
        raise UserError(f"io type {io!r} is not supported by the HLS generator; use one of {', '.join(IO_TYPES)}")
    design = require_inputs(run)
    full_part = resolve_part(part, design.device)
    clock = float(clock_ns if clock_ns is not None else design.clock_ns)
    if clock <= 0:
        raise UserError(f"clock period {clock} ns is not positive; give --clock-ns > 0")
    hls_dir = Path(out) if out is not None else run / HLS_DIR
    # built next to the destination and moved into place: no half-written project on failure
    with replace_dir(hls_dir) as tmp:
        stages = [convert_stage(design, k, tmp / f"stage_{k}", full_part, clock, io) for k in range(design.num_exits)]
        ctx = write_top(design, tmp, stages, full_part, clock, io)
        write_tb_data(tmp / TOP_DIR, test_split(run), design)
    return design, hls_dir, ctx, stages


def hls_command(run: Path, csim: bool, part: str | None, clock_ns: float | None, io: str) -> dict:
    """`codesign hls RUN [--csim]`: write RUN/hls/ and, with csim, RUN/hls/csim.json.

    Returns {"hls_dir", "top", "stages", "part", "clock_ns"} plus, with csim, "csim" (the csim.json dict).
    """
    run = Path(run).resolve()  # g++ runs in other folders: a relative run path would not reach the sources
    design, hls_dir, ctx, stages = generate(run, part, clock_ns, io)
    report: dict[str, Any] = {"hls_dir": str(hls_dir), "top": ctx["top"], "stages": [s.project for s in stages],
                              "part": ctx["part"], "clock_ns": ctx["clock_ns"]}
    if csim:
        result = run_c_simulation(design, hls_dir, ctx, stages, test_split(run))
        write_json(hls_dir / "csim.json", result)
        report["csim"] = result
        if result["mismatches"]:
            raise verification_failed("HLS C simulation", result["mismatches"], result["samples"],
                                      result["mismatched_samples"], hls_dir / "csim.json")
    return report
