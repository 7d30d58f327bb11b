"""C simulation of the HLS top with g++ (no vendor tools), compared with the integer reference."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from stage_ir import policies as pol
from stage_ir.errors import UserError
from sim.jobs import build_jobs
import stage_ir
from codesign.hls.project import CXX, CXXFLAGS, TOP_DIR, StageProject, weight_loader_flags
from codesign.hls.top import exit_policy


def ap_types_dir() -> Path:
    import hls4ml

    return Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"


def _compile(args: list[str], cwd: Path) -> None:
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if res.returncode:
        tail = "\n".join(res.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"C simulation build failed: {' '.join(args)}\n{tail}")


def csim_binary(hls_dir: Path, top: str) -> Path:
    """The C simulation executable that `build_csim` writes (run it from hls_dir/top, see tb/*_test.cpp)."""
    return hls_dir / TOP_DIR / "csim_build" / f"{top}_csim"


def build_csim(hls_dir: Path, ctx: dict, stages: list[StageProject], jobs: int | None = None) -> Path:
    """Compile every stage and the top + testbench with g++ (one object each); return the binary."""
    if shutil.which(CXX) is None:
        raise UserError(f"C simulation needs a C++ compiler ({CXX}); install g++ or run without --csim")
    top_dir = hls_dir / TOP_DIR
    build = Path("csim_build")
    (top_dir / build).mkdir(exist_ok=True)
    # every path relative to top/ (where g++ and the binary run): objects and binary hold no run folder's
    # name, so a run moved elsewhere, or built in a scratch folder and moved, is the same bytes
    inc = ["-I", str(ap_types_dir()), "-I", "csim_include"]
    up = Path("..")
    jobs_args = [[CXX, *CXXFLAGS, *inc, *weight_loader_flags(s, up / s.dir / "firmware" / "weights"),
                  "-c", str(up / s.dir / "firmware" / f"{s.project}.cpp"), "-o", str(build / f"{s.project}.o")]
                 for s in stages]
    top, tb = Path("firmware") / f"{ctx['top']}.cpp", Path("tb") / f"{ctx['top']}_test.cpp"
    jobs_args += [[CXX, *CXXFLAGS, *inc, "-c", str(src), "-o", str(build / f"{src.stem}.o")] for src in (top, tb)]
    with ThreadPoolExecutor(max_workers=jobs or build_jobs()) as pool:
        list(pool.map(lambda a: _compile(a, top_dir), jobs_args))
    binary = csim_binary(hls_dir, ctx["top"])
    _compile([CXX, *[a[-1] for a in jobs_args], "-o", str(binary.relative_to(top_dir))], top_dir)
    return binary


@dataclass
class CsimRun:
    exit_index: np.ndarray  # [N] from the output stream, in output order
    exit_class: np.ndarray
    tags: np.ndarray
    log: list[dict[int, np.ndarray]]  # per exit: tag -> logits
    decisions: list[dict[int, int]]  # per exit: tag -> decision


def run_csim(binary: Path, top_dir: Path, thresholds: Sequence[int], num_exits: int, scratch: Path) -> CsimRun:
    """Run the C simulation once with the given threshold registers."""
    results, log = scratch / "results.txt", scratch / "exits.log"
    args = [str(binary), "tb_data/tb_input_features.dat", str(results), str(log), *map(str, thresholds)]
    res = subprocess.run(args, cwd=top_dir, capture_output=True, text=True)
    if res.returncode != 0:  # explicit thresholds: the testbench does not compare, so any failure is a crash
        raise RuntimeError(f"C simulation failed (exit {res.returncode}): {res.stderr.strip()[-2000:]}")
    out = np.loadtxt(results, dtype=np.int64, ndmin=2)
    logits: list[dict[int, np.ndarray]] = [{} for _ in range(num_exits)]
    decisions: list[dict[int, int]] = [{} for _ in range(num_exits)]
    for line in log.read_text().splitlines():
        k, tag, dec, _cls, _score, *z = map(int, line.split())
        logits[k][tag] = np.array(z, dtype=np.int64)
        decisions[k][tag] = dec
    return CsimRun(out[:, 2], out[:, 1], out[:, 0], logits, decisions)


def compare(design: stage_ir.Design, ref_logits: list[np.ndarray], view: pol.IntegerView, sim: CsimRun,
            all_exits: CsimRun) -> np.ndarray:
    """Per-sample mismatch flags: every exit's logits (all-through run), decisions, class, exit index."""
    n = len(ref_logits[0])
    bad = np.zeros(n, dtype=bool)
    if len(sim.tags) != n or not np.array_equal(sim.tags, np.arange(n)):
        return np.ones(n, dtype=bool)  # lost, duplicated or reordered samples
    bad |= sim.exit_index != view.exit_index
    bad |= sim.exit_class != view.exit_class
    for k in range(design.num_exits):
        for tag in range(n):
            z = all_exits.log[k].get(tag)
            if z is None or not np.array_equal(z, ref_logits[k][tag]):
                bad[tag] = True
        # the real run: exactly the samples that reach exit k are seen there, with the reference decision
        reach = np.flatnonzero(view.exit_index >= k)
        if set(sim.decisions[k]) != set(reach.tolist()):
            bad[:] = True
        for tag in reach.tolist():
            want = 1 if k == design.num_exits - 1 else int(view.decisions[k][tag])
            if sim.decisions[k].get(tag) != want or not np.array_equal(sim.log[k].get(tag), ref_logits[k][tag]):
                bad[tag] = True
    return bad


def run_c_simulation(design: stage_ir.Design, hls_dir: Path, ctx: dict, stages: list[StageProject],
         x: np.ndarray) -> dict:
    """Compile and run the C simulation on x; compare with the integer reference; the csim.json dict."""
    from codesign.design.reference import design_view

    kind, tables, thresholds = exit_policy(design)
    start = time.perf_counter()
    binary = build_csim(hls_dir, ctx, stages)
    compile_seconds = time.perf_counter() - start
    ref_logits, view = design_view(design, x)
    never = [pol.never_threshold(kind, tables, k) for k in range(design.num_exits - 1)]
    top_dir = hls_dir / TOP_DIR
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="csim-") as tmp:
        # debug path: "never" registers send every sample through every stage, so every exit logs its logits
        (Path(tmp) / "all").mkdir()
        (Path(tmp) / "real").mkdir()
        all_exits = run_csim(binary, top_dir, never, design.num_exits, Path(tmp) / "all")
        real = run_csim(binary, top_dir, thresholds, design.num_exits, Path(tmp) / "real")
    run_seconds = time.perf_counter() - start
    bad = compare(design, ref_logits, view, real, all_exits)
    n = len(x)
    counts = np.bincount(real.exit_index.clip(0, design.num_exits - 1), minlength=design.num_exits)
    ref_counts = np.bincount(view.exit_index, minlength=design.num_exits)
    return {
        "samples": int(n),
        "mismatches": int(bad.sum()),
        "mismatched_samples": [int(i) for i in np.flatnonzero(bad)[:20]],
        "policy": design.policy.kind if design.policy else None,
        "thresholds": [int(t) for t in thresholds],
        "export_stages": [st.export_stages for st in design.stages],
        "exits": [{"index": k, "samples": int(counts[k]), "exit_fraction": float(counts[k] / n),
                   "reference_samples": int(ref_counts[k])} for k in range(design.num_exits)],
        "compile_seconds": round(compile_seconds, 3),
        "run_seconds": round(run_seconds, 3),
        "checked": "every exit's logits (thresholds at 'never'), decisions, class and exit index (calibrated "
                   "thresholds) per test sample against codesign.design.reference + stage_ir.policies",
    }
