"""`codesign sim`: cycle-accurate throughput of the generated RTL under an exit-rate distribution.

Samples are the test split (repeated to the requested count). Under `data`
traffic the design decides; under any other spec the testbench forces each
sample's exit (the design still computes everything), so any distribution
can be replayed on the real RTL. A scoreboard checks every result against the
integer reference: nothing lost, duplicated or altered.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codesign.design import ir
from codesign.store.artifacts import read_artifact
from stage_ir.errors import UserError, verification_failed
from codesign.store.timings import write_json
import stage_ir
from sim.traffic import Traffic, exit_sequence, parse_traffic

if TYPE_CHECKING:  # codesign.rtl is imported where a simulation runs
    from codesign.rtl import Outcome

SIM_DIR = "sim"
WATCHDOG_SAMPLES = 50  # the watchdog allows this many (predicted) sample times without any handshake
# Input beats of one simulation: the stream is built in Python (measured 82 bytes per beat, list and
# hex text) before Verilator reads it, so 2**25 beats take about 2.8 GB; 100,000 digits samples are 6.4 M.
MAX_SIM_BEATS = 2**25


def sample_count(samples: int | None, test_samples: int, beats_per_sample: int) -> int:
    """--samples, default the test split, at least 1 and within MAX_SIM_BEATS input beats."""
    n = test_samples if samples is None else int(samples)
    cap = MAX_SIM_BEATS // beats_per_sample
    if not 1 <= n <= cap:
        raise UserError(f"--samples {n}: give 1 to {cap} samples ({beats_per_sample} input beats each, at most "
                        f"{MAX_SIM_BEATS} beats per simulation fit in memory); split longer runs")
    return n


def scoreboard(outcome: Outcome, bad: np.ndarray) -> dict[str, int]:
    """The sim JSON's `scoreboard` from a decoded rtl.Outcome and rtl.compare's per-sample flags.

    lost: samples without a result; duplicated: beats past one result per sample and one logit beat per
    sample and exit, or tagged with no sample (Outcome.extra); altered: samples with a result that compare
    flagged (wrong class or exit, wrong or missing logits at an exit passed, logits past the sample's exit)."""
    got = outcome.exits >= 0
    return {"lost": int((~got).sum()), "duplicated": int(outcome.extra), "altered": int((got & bad).sum())}


def check_scoreboard(result: dict[str, Any], report: Path | str) -> None:
    """VerificationFailed (after the report was written) when a sample was lost, duplicated or altered, or
    the design deadlocked."""
    sb = result["scoreboard"]
    if sb["lost"] or sb["duplicated"] or sb["altered"] or result["deadlock"]:
        what = f"scoreboard under {result['traffic']} (lost {sb['lost']}, duplicated {sb['duplicated']}, altered " \
               f"{sb['altered']}{', deadlock' if result['deadlock'] else ''})"
        raise verification_failed(what, sb["lost"] + sb["altered"], result["samples"], result["failed_samples"], report)


def _check_prob(value: float, what: str) -> float:
    if not 0.0 <= value < 1.0:
        raise UserError(f"{what} must be a probability in [0, 1); got {value}")
    return value


def predicted_throughput(design: stage_ir.Design, exit_fractions, burst_length: float) -> float:
    """hw_models' figure for this design (its folding and buffer depths) at these exit statistics."""
    from hw_models import estimate

    est = estimate(design, [design.device], list(exit_fractions), burst_length=burst_length)
    return float(est["throughput_samples_per_cycle"])


def _latencies(out_cycles: np.ndarray, in_first: np.ndarray, exits: np.ndarray, num_exits: int) -> list[dict]:
    rows = []
    for k in range(num_exits):
        lat = (out_cycles - in_first)[(exits == k) & (out_cycles >= 0)]
        rows.append({"index": k, "samples": int(len(lat)),
                     **({"min": int(lat.min()), "mean": float(lat.mean()), "p99": float(np.percentile(lat, 99)),
                         "max": int(lat.max())} if len(lat) else {"min": None, "mean": None, "p99": None, "max": None})})
    return rows


def probe_report(manifest: dict[str, Any], probes: dict[str, dict], cycles: int) -> dict[str, list[dict]]:
    """The sim JSON's `buffers` and `stages` from the testbench's probe counters (docs/rtl.md, "Traffic simulation")."""
    buffers: dict[int, dict[str, Any]] = {}
    stages: list[dict[str, Any]] = []
    exits = {e["index"]: e for e in manifest["exits"]}
    for p in manifest.get("sim_probes", []):
        got, k = probes.get(p["name"]), p["stage"]
        if got is None:
            continue
        if p["kind"] == "flags":
            stages.append({"stage": k, **{f"{flag}_cycles": n for flag, n in zip(p["bits"], got["bits"])}})
            continue
        row = buffers.setdefault(k, {"boundary": k, "depth": exits[k]["buffer_depth"],
                                     "slots": exits[k].get("buffer_slots", exits[k]["buffer_depth"]),
                                     "beats_per_sample": exits[k]["buffer_beats"]})
        row[f"max_occupancy_{p['measure']}"] = got["max"]
        row[f"mean_occupancy_{p['measure']}"] = got["sum"] / max(cycles, 1)
    return {"buffers": [buffers[k] for k in sorted(buffers)], "stages": sorted(stages, key=lambda r: r["stage"])}


def run_traffic(run: Path, spec: str = "data", samples: int | None = None, backpressure: float = 0.0,
                gaps: float = 0.0, seed: int = 0, write: bool = True, fst: bool = False) -> dict[str, Any]:
    """Simulate RUN/rtl under one traffic spec; writes RUN/sim/<name>.json (and <name>.fst with `fst`).

    The scoreboard compares every result (exit, class, and the logits of every exit the sample passed)
    with the integer reference; with `write`, a failure raises VerificationFailed after the report."""
    from codesign import rtl
    run = Path(run)
    _check_prob(backpressure, "--backpressure")
    _check_prob(gaps, "--gaps")
    if not (run / rtl.RTL_DIR / rtl.MANIFEST).is_file():
        raise UserError(f"{run}/rtl not generated; run `codesign rtl {run}` first")
    design = rtl.require_design(run)
    traffic: Traffic = parse_traffic(spec, design.num_exits)
    from codesign.frontend.calibrate_run import run_dataset

    test = run_dataset(run).test
    test_x, test_y = test.x, test.y
    man = rtl.load_manifest(run)
    n = sample_count(samples, len(test_x), man["input"]["beats_per_sample"])
    x = np.resize(test_x, (n, *test_x.shape[1:]))
    logits, view = rtl.reference(design, x)
    forced = exit_sequence(traffic, n, seed)
    expected_exit = view.exit_index if forced is None else forced
    expected_class = view.scores.classes[expected_exit, np.arange(n)]
    fractions = [float(np.mean(expected_exit == k)) for k in range(design.num_exits)]
    burst = traffic.burst_length if traffic.kind == "markov" else 1.0
    predicted = predicted_throughput(design, fractions, burst)
    wave = run / SIM_DIR / f"{traffic.name}.fst" if fst else None
    if wave is not None:
        wave.parent.mkdir(exist_ok=True)
    # a deadlock ends the run: no beat moving for far longer than any sample takes
    watchdog = int(WATCHDOG_SAMPLES / max(predicted * (1 - backpressure) * (1 - gaps), 1e-9)) + 10_000
    started = time.perf_counter()
    outcome, res = rtl.simulate(run, x, forced=None if forced is None else forced.tolist(),
                                expected_exits=expected_exit, p_valid=1.0 - gaps, p_ready=1.0 - backpressure,
                                seed=seed + 1, max_cycles=2_000_000_000, watchdog=watchdog,
                                **({"trace": "fst", "wave": wave} if wave is not None else {}))
    seconds = time.perf_counter() - started
    bad = rtl.compare(outcome, logits, rtl.Expected(expected_exit, expected_class))
    beats = man["input"]["beats_per_sample"]
    in_cycles = np.asarray(res.in_cycles[0], dtype=np.int64)
    in_first = in_cycles[::beats][:n] if len(in_cycles) >= n * beats else np.full(n, -1)
    first, last = int(in_cycles[0]) if len(in_cycles) else 0, int(outcome.out_cycles.max()) + 1
    cycles = max(last - first, 1)
    measured = n / cycles
    result = {
        "traffic": spec, "samples": n, "cycles": cycles,
        "throughput_samples_per_cycle": measured,
        "throughput_samples_per_second": measured * 1e9 / design.clock_ns,
        "predicted_throughput_samples_per_cycle": predicted,
        "model_error": (predicted - measured) / measured,
        "clock_ns": design.clock_ns, "backpressure": backpressure, "gaps": gaps, "seed": seed,
        "burst_length": burst,
        "accuracy": float(np.mean(outcome.classes == np.resize(test_y, n))),
        "exits": [{"index": k, "count": int(np.sum(outcome.exits == k)), "expected": int(np.sum(expected_exit == k)),
                   "fraction": fractions[k]} for k in range(design.num_exits)],
        "latency_cycles": _latencies(outcome.out_cycles, in_first, outcome.exits, design.num_exits),
        "scoreboard": scoreboard(outcome, bad),
        "failed_samples": [int(i) for i in np.flatnonzero(bad)[:20]],  # lost or altered, the first 20
        "probe_cycles": res.cycles,
        **probe_report(man, res.probes, res.cycles),
        "waveform": wave.relative_to(run).as_posix() if wave is not None else None,
        "deadlock": bool(res.timeout),
        "watchdog_cycles": watchdog,
        "wall_seconds": round(seconds, 3),
        "simulated_cycles_per_second": res.cycles / max(seconds, 1e-9),
        # RUN: artifacts name no folder, so a run moved elsewhere holds the same bytes
        "command": f"codesign sim RUN --traffic {spec} --samples {n} --backpressure {backpressure} --gaps {gaps}"
                   + (" --fst" if fst else ""),
    }
    if write:
        out = run / SIM_DIR
        out.mkdir(exist_ok=True)
        path = out / f"{traffic.name}.json"
        write_json(path, result)
        check_scoreboard(result, path)
    return result


SWEEP_GRAMMAR = "iid:LO..HI[/N], markov:P,LO..HI[/N] (N >= 2 points, default 5) or spec;spec;..."
MAX_SWEEP_POINTS = 100  # each point is a whole simulation


def expand_sweep(spec: str) -> list[str]:
    """`iid:0.1..0.9[/5]` or `markov:0.5,1..64[/5]` or `a;b;c` -> a list of specs."""
    if ";" in spec:
        specs = [s for s in spec.split(";") if s.strip()]
        if not specs:
            raise UserError(f"--sweep {spec!r} lists no traffic spec; grammar: {SWEEP_GRAMMAR}")
        return specs
    head, _, rng = spec.rpartition(",") if spec.startswith("markov:") else spec.partition(":")
    if ".." not in rng:
        return [spec]
    span, _, count = rng.partition("/")
    try:
        lo, hi = (float(v) for v in span.split(".."))
        n = int(count or 5)
    except ValueError:
        raise UserError(f"--sweep {spec!r}: not a range of numbers; grammar: {SWEEP_GRAMMAR}") from None
    if not 2 <= n <= MAX_SWEEP_POINTS:
        raise UserError(f"--sweep {spec!r}: {n} points; a range sweeps 2 to {MAX_SWEEP_POINTS} points")
    if spec.startswith("markov:") and not 1 <= lo <= hi:
        raise UserError(f"--sweep {spec!r}: burst lengths must satisfy 1 <= LO <= HI; grammar: {SWEEP_GRAMMAR}")
    values = np.geomspace(lo, hi, n) if spec.startswith("markov:") else np.linspace(lo, hi, n)
    fmt = (lambda v: f"{head},{v:g}") if spec.startswith("markov:") else (lambda v: f"{head}:{v:g}")
    return [fmt(round(float(v), 4)) for v in values]


def sweep(run: Path, spec: str, samples: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Measured vs predicted throughput over a list of exit rates or burst lengths: sim/sweep.json + sweep.png."""
    from codesign.rtl import require_design

    run = Path(run)
    specs = expand_sweep(spec)
    num_exits = require_design(run).num_exits
    for s in specs:  # every spec checked before the first simulation
        parse_traffic(s, num_exits)
    points = [run_traffic(run, s, samples, seed=seed, write=False) for s in specs]
    rows = [{k: p[k] for k in ("traffic", "samples", "throughput_samples_per_cycle",
                               "predicted_throughput_samples_per_cycle", "model_error", "scoreboard")} for p in points]
    errors = [abs(r["model_error"]) for r in rows]
    result = {"sweep": spec, "points": rows, "mean_abs_model_error": float(np.mean(errors)),
              "max_abs_model_error": float(np.max(errors))}
    out = run / SIM_DIR
    out.mkdir(exist_ok=True)
    write_json(out / "sweep.json", result)
    _plot_sweep(rows, out / "sweep.png")
    for p in points:
        check_scoreboard(p, out / "sweep.json")
    return result


def _plot_sweep(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    labels = [r["traffic"] for r in rows]
    xs = np.arange(len(rows))
    ax.plot(xs, [r["throughput_samples_per_cycle"] for r in rows], "o-", label="measured (Verilator)")
    ax.plot(xs, [r["predicted_throughput_samples_per_cycle"] for r in rows], "s--", label="predicted (hw_models)")
    ax.set_xticks(xs, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("samples / cycle")
    ax.set_title("Throughput under exit-rate distributions")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


SWEEP_RATES = (0.5, 0.7, 0.85, 0.95, 1.0)  # exit-0 rates of the flow's measured-vs-predicted sweep
# The model predicts steady state; on digits' 449 samples the fill and the drain of the last
# continuing sample through the later stages (~800 cycles) moved the measured figure by up to 10 %.
SIM_MIN_SAMPLES = 2000


def measure_gain(run: Path, ee: dict[str, Any]) -> float:
    """Simulate the no-exit baseline the DSE compared against; record the measured gain in sim/data.json."""
    from codesign.design.baseline import BASELINE_DIR, write_baseline
    from codesign.rtl import generate_rtl

    dse = read_artifact(run, "dse.json")
    folder = write_baseline(run, dse["baseline"]["folding"])
    generate_rtl(folder)
    bl = run_traffic(folder, "data", samples=ee["samples"])  # the same passes over the test split
    ee.update(measured_gain=ee["throughput_samples_per_cycle"] / bl["throughput_samples_per_cycle"],
              baseline_throughput_samples_per_cycle=bl["throughput_samples_per_cycle"],
              baseline_accuracy=bl["accuracy"], baseline_run=BASELINE_DIR)
    write_json(run / SIM_DIR / "data.json", ee)
    return ee["measured_gain"]


def flow_measurement(run: Path) -> dict[str, Any]:
    """The flow's sim step: the design on whole passes over the test split (dataset order, at least
    SIM_MIN_SAMPLES), its no-exit baseline, and a measured-vs-predicted sweep of exit rates."""
    from codesign.frontend.calibrate_run import run_dataset

    run = Path(run)
    n_test = len(run_dataset(run).test.x)
    r = run_traffic(run, "data", samples=n_test * -(-SIM_MIN_SAMPLES // n_test))
    gain = measure_gain(run, r)
    summary = (f"measured {r['throughput_samples_per_cycle']:.4g} samples/cycle (gain {gain:.2f}x), predicted "
               f"{r['predicted_throughput_samples_per_cycle']:.4g}; scoreboard {r['scoreboard']}")
    exits = ir.load_design(run).num_exits
    # a design the DSE left without early exits has no exit rate to sweep: its real traffic only
    spec = ";".join(f"iid:{p:g}{',0' * (exits - 2)}" for p in SWEEP_RATES) if exits > 1 else "data"
    sw = sweep(run, spec, samples=r["samples"])
    summary += (f"; sweep model error mean {100 * sw['mean_abs_model_error']:.1f} %, worst "
                f"{100 * sw['max_abs_model_error']:.1f} %")
    return {"data": r, "sweep": sw, "summary": summary}
