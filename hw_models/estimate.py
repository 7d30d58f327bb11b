"""`codesign estimate`: per-layer/stage figures, device utilisation, system throughput."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from stage_ir import Design
from stage_ir.errors import UserError

from .devices import RESOURCES, get_device
from .stages import stage_costs
from .flow_sim import BufferTiming, effective_depths, per_boundary
from .rtl_timing import boundary_slots, drain_fraction, read_cycles, write_span
from .rtl_timing import decision_latency as rtl_decision_latency
from .system import (infinite_buffer_throughput, mean_latency, path_latencies,
                     reach_fractions, system_throughput, system_throughput_many)

NOTE_RTL = ("RTL LUT/FF coefficients fitted to yosys 0.23 synth_xilinx (xc7) on 7 digits designs, DSP/BRAM rules "
            "exact there; throughput rules checked against Verilator (docs/RESULTS.md, model validation)")
NOTE_HLS = "HLS figures are NOT checked against vendor synthesis (no Vivado/Vitis in this toolchain)"


def _round(x: float) -> float:
    return float(f"{float(x):.7g}")


def buffer_timing(stages, decision_latency: float | None = None, order: str | None = None,
                  design: Design | None = None, folding: dict | None = None, depths=None) -> BufferTiming:
    """The buffer rules for a design: decision latency defaults to the slowest
    exit head + threshold unit latency (split to decision, empty pipeline).
    With ``design`` (RTL back end): the `slots` rule of its cs_cond_buffer, the
    exit path's decision capacity, the next stage's input queue and drain time
    (rtl_timing.py); without: `order` (default `in_order`, the HLS buffer)."""
    if design is None or len(stages) < 2:
        if decision_latency is None:
            heads = [sc.head_latency for sc in stages[:-1]]
            decision_latency = max(heads) if heads else 0.0
        return BufferTiming(order=order or "in_order", decision_latency=float(decision_latency))
    caps, queues = boundary_slots(design, folding, depths)
    ds = design.stages
    spans = tuple(write_span(st, sc.ii, sc.buffer_beats, folding) for st, sc in zip(ds[:-1], stages[:-1]))
    if decision_latency is None:  # from the last beat written, the head overlapping the write
        decision_latency = max(rtl_decision_latency(st, sc.head_latency, {b.name: float(np.max(b.cost.cycles))
                                                                          for b in sc.blocks}, span, folding)
                               for st, sc, span in zip(ds[:-1], stages[:-1], spans))
    # a continuing sample holds its slot until stage k+1 has read its last beat: its line buffer's
    # share of the II, or the meta beat and the beats at one per cycle, whichever is later
    drain = tuple(max(drain_fraction(st, folding) * sc.ii, read_cycles(prev.buffer_beats))
                  for st, sc, prev in zip(ds[1:], stages[1:], stages[:-1]))
    return BufferTiming(order=order or "slots", decision_latency=float(decision_latency), input_queue=queues,
                        decision_capacity=caps, drain=drain, write_span=spans)


def estimate(design: Design, devices: list[str], exit_fractions, backend: str = "rtl",
             folding: dict | None = None, buffer_depths: list[int] | None = None,
             burst_length: float = 1.0, strategy: str = "latency",
             decision_latency: float | None = None, buffer_order: str | None = None) -> dict:
    """The estimate.json dict (docs/hw_models.md lists every key)."""
    parts = [get_device(d) for d in devices]
    stages = stage_costs(design, backend, folding, buffer_depths, strategy)
    timing = buffer_timing(stages, decision_latency, buffer_order, design if backend == "rtl" else None, folding,
                           buffer_depths)
    fractions = np.asarray(exit_fractions, dtype=float)
    q = reach_fractions(fractions)
    if len(q) != len(stages):
        raise UserError(f"{len(q)} exit fractions for {len(stages)} exits; give one per exit, final exit last")
    ii = [sc.ii for sc in stages]
    depths = buffer_depths or [s.buffer_depth for s in design.stages[:-1]]
    thr = system_throughput(ii, fractions, depths, burst_length, timing)
    thr_inf = float(infinite_buffer_throughput(ii, q))
    lat = path_latencies(stages)
    totals = {r: _round(sum(sc.total()[r] for sc in stages)) for r in RESOURCES}
    stage_out = []
    for sc, qk in zip(stages, q):
        layers = []
        for b in sc.blocks:
            d = b.cost.to_dict()
            layers.append({"name": b.name, "kind": b.kind, "part": b.part,
                           **{k: _round(d[k]) for k in ("cycles", "latency", "lut", "ff", "dsp", "bram")}})
        stage_out.append({"index": sc.index, "ii_cycles": _round(sc.ii), "reach_fraction": _round(qk),
                          "theta_samples_per_cycle": _round(1.0 / sc.ii),
                          "latency_cycles": _round(sc.backbone_latency + sc.head_latency),
                          **{r: _round(v) for r, v in sc.total().items()}, "layers": layers})
    dev_out = {}
    for dev in parts:
        cap = dev.totals()
        util = {r: _round(totals[r] / cap[r]) if cap[r] else None for r in RESOURCES}
        dev_out[dev.name] = {**totals, "utilization": util,
                             "fits": all(u is not None and u <= 1.0 for u in util.values() if cap),
                             "clock_ns": dev.clock_ns,
                             "throughput_samples_per_cycle": _round(thr),
                             "throughput_samples_per_second": _round(thr * 1e9 / dev.clock_ns)}
    return {
        "backend": backend,
        "strategy": strategy if backend == "hls" else None,
        "checked_against_synthesis": backend == "rtl",
        "note": NOTE_HLS if backend == "hls" else NOTE_RTL,
        "burst_length": float(burst_length),
        "buffer_timing": {"order": timing.order, "decision_latency_cycles": timing.decision_latency,
                          "read_latency_cycles": timing.read_latency,
                          "release_latency_cycles": timing.release_latency,
                          "head_interval_cycles": timing.head_interval,
                          "decision_capacity_samples": [int(v) for v in per_boundary(timing.decision_capacity, len(stages))],
                          "input_queue_samples": [int(v) for v in per_boundary(timing.input_queue, len(stages))],
                          "effective_depths": [int(v) for v in effective_depths(depths, timing.decision_capacity)],
                          "drain_cycles": [float(v) for v in per_boundary(timing.drain, len(stages), float)],
                          "write_span_cycles": [float(v) for v in per_boundary(timing.write_span, len(stages), float)]},
        "buffer_depths": [int(d) for d in depths],
        "throughput_samples_per_cycle": _round(thr),
        "throughput_infinite_buffers_samples_per_cycle": _round(thr_inf),
        "mean_latency_cycles": _round(mean_latency(lat, fractions)),
        "exits": [{"index": k, "exit_fraction": _round(f), "reach_fraction": _round(q[k]),
                   "latency_cycles": _round(lat[k])} for k, f in enumerate(fractions)],
        "totals": totals,
        "stages": stage_out,
        "devices": dev_out,
    }


def render_markdown(est: dict) -> str:
    """estimate.md: one table per view, numbers as in estimate.json."""
    lines = [f"# Estimate ({est['backend']} back end)", "", f"> {est['note']}", "",
             f"System throughput: {est['throughput_samples_per_cycle']:.6g} samples/cycle "
             f"(infinite buffers: {est['throughput_infinite_buffers_samples_per_cycle']:.6g}), "
             f"burst length {est['burst_length']:g}, buffer depths {est['buffer_depths']}", "",
             "| exit | exit fraction | reach fraction | latency (cycles) |", "| --- | --- | --- | --- |"]
    lines += [f"| {e['index']} | {e['exit_fraction']:.3f} | {e['reach_fraction']:.3f} | {e['latency_cycles']:g} |"
              for e in est["exits"]]
    lines += ["", "| device | LUT | FF | DSP | BRAM36 | fits | samples/s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, d in est["devices"].items():
        u = d["utilization"]
        lines.append(f"| {name} | {d['lut']:g} ({100 * u['lut']:.1f}%) | {d['ff']:g} ({100 * u['ff']:.1f}%) | "
                     f"{d['dsp']:g} ({100 * u['dsp']:.1f}%) | {d['bram']:g} ({100 * u['bram']:.1f}%) | "
                     f"{'yes' if d['fits'] else 'no'} | {d['throughput_samples_per_second']:.4g} |")
    for st in est["stages"]:
        lines += ["", f"## Stage {st['index']} (II {st['ii_cycles']:g} cycles, reach {st['reach_fraction']:.3f})", "",
                  "| block | kind | part | cycles | latency | LUT | FF | DSP | BRAM36 |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {b['name']} | {b['kind']} | {b['part']} | {b['cycles']:g} | {b['latency']:g} | {b['lut']:g} | "
                  f"{b['ff']:g} | {b['dsp']:g} | {b['bram']:g} |" for b in st["layers"]]
    return "\n".join(lines) + "\n"


def throughput_curve(design: Design, exit_fractions, rates, backend: str = "rtl", folding: dict | None = None,
                     buffer_depths: list[int] | None = None, burst_length: float = 1.0,
                     decision_latency: float | None = None) -> dict[str, list[float]]:
    """Throughput vs early-exit rate: early exits keep their relative shares of `exit_fractions`."""
    stages = stage_costs(design, backend, folding, buffer_depths)
    ii = [sc.ii for sc in stages]
    depths = buffer_depths or [s.buffer_depth for s in design.stages[:-1]]
    f = np.asarray(exit_fractions, dtype=float)
    shape = f[:-1] / f[:-1].sum() if f[:-1].sum() > 0 else np.full(len(f) - 1, 1.0 / max(len(f) - 1, 1))
    # a design without early exits (the DSE kept none) runs every sample through: a flat curve
    rows = np.array([np.append(shape * p, 1.0 - p) if len(f) > 1 else [1.0] for p in rates])
    timing = buffer_timing(stages, decision_latency, None, design if backend == "rtl" else None, folding)
    return {"rate": [float(p) for p in rates],
            "infinite": system_throughput_many(ii, rows).tolist(),
            "finite": system_throughput_many(ii, rows, depths, burst_length, timing).tolist()}


def plot_throughput_vs_exit_rate(design: Design, exit_fractions, path: str | Path, backend: str = "rtl",
                                 folding: dict | None = None, buffer_depths: list[int] | None = None,
                                 burst_length: float = 1.0, rates=None,
                                 decision_latency: float | None = None) -> Path:
    """PNG of system throughput against the early-exit rate (matplotlib, Agg)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rates = np.linspace(0.0, 0.95, 12) if rates is None else rates
    c = throughput_curve(design, exit_fractions, rates, backend, folding, buffer_depths, burst_length,
                         decision_latency)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(c["rate"], c["infinite"], label="infinite buffers")
    ax.plot(c["rate"], c["finite"], "--", label=f"finite buffers, burst L={burst_length:g}")
    ax.set_xlabel("early-exit rate" if len(design.stages) > 1 else "early-exit rate (this design has no early exit)")
    ax.set_ylabel("throughput (samples/cycle)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
