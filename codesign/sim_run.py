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
from typing import Any

import numpy as np

from codesign import ir
from codesign.errors import UserError
from sim.traffic import Traffic, exit_sequence, parse_traffic

SIM_DIR = "sim"
WATCHDOG_SAMPLES = 50  # the watchdog allows this many (predicted) sample times without any handshake


def _check_prob(value: float, what: str) -> float:
    if not 0.0 <= value < 1.0:
        raise UserError(f"{what} must be a probability in [0, 1); got {value}")
    return value


def predicted_throughput(design: ir.Design, exit_fractions, burst_length: float) -> float:
    """hw_models' figure for this design (its folding and buffer depths) at these exit statistics."""
    from hw_models import estimate

    est = estimate(design.as_dict(), [design.device], list(exit_fractions), burst_length=burst_length)
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
    """Simulate RUN/rtl under one traffic spec; writes RUN/sim/<name>.json (and <name>.fst with `fst`)."""
    from codesign import rtl

    run = Path(run)
    _check_prob(backpressure, "--backpressure")
    _check_prob(gaps, "--gaps")
    if not (run / rtl.RTL_DIR / rtl.MANIFEST).is_file():
        raise UserError(f"{run}/rtl not generated; run `codesign rtl {run}` first")
    design = rtl.require_design(run)
    traffic: Traffic = parse_traffic(spec, design.num_exits)
    from codesign.calibrate_run import run_dataset

    test = run_dataset(run).test
    test_x, test_y = test.x, test.y
    n = samples or len(test_x)
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
    got = outcome.exits >= 0
    lost = int((~got).sum())
    altered = int((got & ((outcome.exits != expected_exit) | (outcome.classes != expected_class))).sum())
    beats = len(rtl.input_beats(rtl.load_manifest(run), x[:1]))
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
        "scoreboard": {"lost": lost, "duplicated": int(outcome.extra), "altered": altered},
        "probe_cycles": res.cycles,
        **probe_report(rtl.load_manifest(run), res.probes, res.cycles),
        "waveform": str(wave) if wave is not None else None,
        "deadlock": bool(res.timeout),
        "watchdog_cycles": watchdog,
        "wall_seconds": round(seconds, 3),
        "simulated_cycles_per_second": res.cycles / max(seconds, 1e-9),
        "command": f"codesign sim {run} --traffic {spec} --samples {n} --backpressure {backpressure} --gaps {gaps}"
                   + (" --fst" if fst else ""),
    }
    if write:
        out = run / SIM_DIR
        out.mkdir(exist_ok=True)
        (out / f"{traffic.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def expand_sweep(spec: str) -> list[str]:
    """`iid:0.1..0.9[/5]` or `markov:0.5,1..64[/5]` or `a;b;c` -> a list of specs."""
    if ";" in spec:
        return [s for s in spec.split(";") if s]
    head, _, rng = spec.rpartition(",") if spec.startswith("markov:") else spec.partition(":")
    if ".." not in rng:
        return [spec]
    span, _, count = rng.partition("/")
    lo, hi = (float(v) for v in span.split(".."))
    n = int(count or 5)
    values = np.geomspace(lo, hi, n) if spec.startswith("markov:") else np.linspace(lo, hi, n)
    fmt = (lambda v: f"{head},{v:g}") if spec.startswith("markov:") else (lambda v: f"{head}:{v:g}")
    return [fmt(round(float(v), 4)) for v in values]


def sweep(run: Path, spec: str, samples: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Measured vs predicted throughput over a list of exit rates or burst lengths: sim/sweep.json + sweep.png."""
    run = Path(run)
    points = [run_traffic(run, s, samples, seed=seed, write=False) for s in expand_sweep(spec)]
    rows = [{k: p[k] for k in ("traffic", "samples", "throughput_samples_per_cycle",
                               "predicted_throughput_samples_per_cycle", "model_error", "scoreboard")} for p in points]
    errors = [abs(r["model_error"]) for r in rows]
    result = {"sweep": spec, "points": rows, "mean_abs_model_error": float(np.mean(errors)),
              "max_abs_model_error": float(np.max(errors))}
    out = run / SIM_DIR
    out.mkdir(exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot_sweep(rows, out / "sweep.png")
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
