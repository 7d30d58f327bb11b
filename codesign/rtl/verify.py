"""`codesign rtl`: generate, verify every test sample against the integer reference, lint."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from codesign.design.reference import design_view as reference
from codesign.store.timings import write_json
from stage_ir.errors import verification_failed
from codesign.rtl.files import RTL_DIR, VERIFY, generate_rtl, load_manifest, require_design
from codesign.rtl.simulate import _require_verilator, build_sim, compare, simulate, split_inputs


def verify_rtl(run: str | Path, samples: int | None = None) -> dict[str, Any]:
    """Simulate the TEST split (or its first `samples`) through RUN/rtl and compare with the integer reference.

    Writes RUN/rtl/verify.json (samples, mismatches, exits (per-exit sample counts), cycles,
    cycles_per_sample) and returns it with build_seconds and run_seconds, which go to RUN/timings.json."""
    run = Path(run)
    design = require_design(run)
    generate_rtl(run)  # cheap, rewrites only what changed: never verify RTL older than design.json
    x = split_inputs(run)
    if samples is not None:
        x = x[:samples]
    logits, view = reference(design, x)
    t0 = time.perf_counter()
    build_sim(run)
    build_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    outcome, res = simulate(run, x, expected_exits=view.exit_index)
    run_seconds = time.perf_counter() - t0
    bad = compare(outcome, logits, view)
    n = len(x)
    last_out = int(max(res.out_cycles[0])) + 1 if res.out_cycles[0] else res.cycles
    first_in = int(res.in_cycles[0][0]) if res.in_cycles[0] else 0
    report = {
        "samples": n,
        "mismatches": int(bad.sum()) + outcome.extra,
        "mismatched_samples": [int(i) for i in np.flatnonzero(bad)[:20]],
        "duplicated_beats": outcome.extra,
        "timeout": bool(res.timeout),
        "exits": [{"index": k, "samples": int(np.sum(outcome.exits == k)),
                   "reference_samples": int(np.sum(view.exit_index == k))} for k in range(design.num_exits)],
        "thresholds": [int(t) for t in design.policy.thresholds] if design.policy else [],
        "cycles": last_out - first_in,
        "cycles_per_sample": (last_out - first_in) / max(n, 1),
        "build_seconds": round(build_seconds, 3),
        "run_seconds": round(run_seconds, 3),
    }
    write_json(run / RTL_DIR / VERIFY, report, indent=1)
    return report


def lint_rtl(run: str | Path, *, debug: int = 0, sim: bool = False, flags: Sequence[str] = ("-Wall",)) -> Any:
    """`verilator --lint-only` of the generated top (of its sim wrapper with `sim=True`), DEBUG=`debug`."""
    from sim.build import lint

    _require_verilator()
    man = load_manifest(run)
    folder = Path(run) / RTL_DIR
    top, sources = (man["sim_top"], man["sim_sources"]) if sim else (man["top"], man["sources"])
    return lint(top, [folder / s for s in sources], {"DEBUG": debug}, flags=flags)


def rtl_command(run: str | Path, verify: bool = False, samples: int | None = None) -> dict[str, Any]:
    """`codesign rtl RUN [--verify]`: generate RUN/rtl, optionally verify it; a summary dict."""
    run = Path(run)
    out = generate_rtl(run)
    man = load_manifest(run)
    summary: dict[str, Any] = {"rtl_dir": str(out), "top": man["top"], "sources": man["sources"],
                               "rom_files": len(man["rom_files"])}
    if verify:
        v = summary["verify"] = verify_rtl(run, samples)
        if v["mismatches"]:
            raise verification_failed("RTL simulation (Verilator" + (", timed out)" if v["timeout"] else ")"),
                                      v["mismatches"], v["samples"], v["mismatched_samples"], run / RTL_DIR / VERIFY)
    return summary
