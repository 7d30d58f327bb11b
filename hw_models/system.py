"""System model of an EE dataflow: exit-aware throughput, finite buffers, latency.

Timing model (docs/hw_models.md, "System timing model"; flow_sim.BufferTiming
holds its parameters): stage k takes one sample every ii_k cycles; the
source never starves stage 0 and the exit merge never blocks; conditional
buffer k holds depth_k samples and stalls stage k when full, never drops.
Exit decisions follow the sticky Markov source with mean burst length L
(L = 1: i.i.d.).  Infinite buffers: min_k theta_k / q_k.  Finite buffers:
the exact Markov chain where it applies (two stages, continue-only buffer,
no decision latency), else the sample-level event model.
"""
from __future__ import annotations

import numpy as np

from stage_ir.errors import UserError

from .buffer_chain import boundary_throughput
from .flow_sim import BufferTiming, pooled_throughput, simulate_flow, sticky_exits

FRACTION_TOLERANCE = 1e-6


def reach_fractions(exit_fractions) -> np.ndarray:
    """q_k: fraction of samples reaching stage k, from per-exit fractions (sum 1).

    Accepts [..., K] arrays; validates that each row is a distribution.
    """
    f = np.asarray(exit_fractions, dtype=float)
    if f.ndim == 0 or f.shape[-1] == 0:
        raise UserError("exit fractions are empty; give one fraction per exit (final exit last), summing to 1")
    if np.any(f < -FRACTION_TOLERANCE) or np.any(f > 1 + FRACTION_TOLERANCE):
        raise UserError("exit fractions must lie in 0..1; give the fraction of samples leaving at each exit")
    total = f.sum(axis=-1)
    if np.any(np.abs(total - 1.0) > 1e-3):
        bad = float(np.atleast_1d(total)[np.argmax(np.abs(np.atleast_1d(total) - 1.0))])
        raise UserError(f"exit fractions sum to {bad:.4f}, not 1; give one fraction per exit including the final exit")
    cum = np.cumsum(f, axis=-1)
    q = np.concatenate([np.ones_like(f[..., :1]), 1.0 - cum[..., :-1]], axis=-1)
    return np.clip(q, 0.0, 1.0)


def infinite_buffer_throughput(ii, q) -> np.ndarray:
    """min_k theta_k / q_k with theta_k = 1/ii_k (samples/cycle); broadcasts over [..., K]."""
    ii = np.asarray(ii, dtype=float)
    q = np.asarray(q, dtype=float)
    with np.errstate(divide="ignore"):
        per_stage = np.where(q > 0, 1.0 / (ii * np.maximum(q, 1e-300)), np.inf)
    return per_stage.min(axis=-1)


def flow_budget(exit_fractions, burst_length: float) -> tuple[int, int, int]:
    """(lanes, samples per lane, warmup) for the event model.

    Enough regeneration cycles of the exit source (runs of mean length L / p
    and L / (1 - p)) for about 1% relative noise, within 0.77 M .. 3 M samples.
    """
    f = np.asarray(exit_fractions, dtype=float)
    p = float(np.clip(f[:-1].sum(), 1e-3, 1 - 1e-3)) if len(f) > 1 else 0.5
    regen = burst_length * (1.0 / p + 1.0 / (1.0 - p))
    total = int(np.clip(1500 * regen, 768_000, 3_072_000))
    samples = 3000
    lanes = int(np.ceil(total / samples / 64) * 64)
    return lanes, samples, samples // 5


def system_throughput(ii, exit_fractions, buffer_depths=None, burst_length: float = 1.0,
                      timing: BufferTiming | None = None, seed: int = 0) -> float:
    """Input samples per cycle of the whole design.

    ii: cycles per sample of each stage; exit_fractions: per exit (final last);
    buffer_depths: per boundary (None = infinite buffers); timing: the buffer
    rules (default: the RTL's in-order conditional buffer, no decision latency).
    Two stages with the `continue_only` rules and no decision/release latency
    use the exact Markov chain; everything else the sample-level event model.
    """
    return float(system_throughput_many(ii, [exit_fractions], buffer_depths, burst_length, timing, seed)[0])


def system_throughput_many(ii, exit_fraction_rows, buffer_depths=None, burst_length: float = 1.0,
                           timing: BufferTiming | None = None, seed: int = 0) -> np.ndarray:
    """system_throughput for several exit distributions of one design (one batched event run)."""
    ii = np.asarray(ii, dtype=float)
    rows = np.atleast_2d(np.asarray(exit_fraction_rows, dtype=float))
    q = reach_fractions(rows)
    if q.shape[1] != len(ii):
        raise UserError(f"{q.shape[1]} exit fractions for {len(ii)} stages; give one per exit, final exit last")
    if burst_length < 1:
        raise UserError(f"burst length {burst_length} is below 1; use 1 for i.i.d. exits or a mean burst length > 1")
    best = infinite_buffer_throughput(ii[None, :], q)
    if buffer_depths is None or len(ii) == 1:
        return best
    depths = [int(d) for d in buffer_depths]
    if len(depths) != len(ii) - 1 or min(depths) < 1:
        raise UserError(f"buffer depths {depths}: give one depth >= 1 per early exit ({len(ii) - 1})")
    timing = timing or BufferTiming()
    if exact_chain_applies(timing, len(ii)):
        x = [boundary_throughput(ii[0], ii[1], depths[0], qr[1], burst_length, int(timing.read_latency))
             for qr in q]
        return np.minimum(best, np.array(x))
    budgets = [flow_budget(r, burst_length) for r in rows]
    samples, warmup = budgets[0][1], budgets[0][2]
    lanes = [b[0] for b in budgets]
    per_lane_fr = np.repeat(rows, lanes, axis=0)
    cum = np.cumsum(per_lane_fr, axis=1)
    cum[:, -1] = np.inf
    exits = sticky_exits(np.random.default_rng(seed), cum, np.full(sum(lanes), float(burst_length)), samples)
    elapsed = simulate_flow(np.tile(ii, (sum(lanes), 1)), np.array(depths), per_lane_fr, burst_length,
                            timing, samples, warmup, seed, exits=exits)
    bounds = np.cumsum([0] + lanes)
    x = np.array([pooled_throughput(elapsed[bounds[i]:bounds[i + 1]], samples, warmup,
                                    exits[:, bounds[i]:bounds[i + 1]], q[i, 1:]) for i in range(len(rows))])
    return np.minimum(best, x)


def system_throughput_batch(configs: list[dict], burst_length: float = 1.0, timing: BufferTiming | None = None,
                            lanes_per_config: int = 128, samples: int = 2000, seed: int = 0) -> np.ndarray:
    """Throughput of many designs at once (one event run per stage count).

    configs[i]: {"ii": [...], "exit_fractions": [...], "buffer_depths": [...],
    "decision_latency": cycles, "drain" and "write_span": cycles per boundary}.  Used to re-rank DSE
    candidates; the lane budget is smaller than system_throughput's (control variates keep the
    noise near 1%).
    """
    timing = timing or BufferTiming()
    out = np.zeros(len(configs))
    by_k: dict[int, list[int]] = {}
    for i, cfg in enumerate(configs):
        ii = np.asarray(cfg["ii"], dtype=float)
        q = reach_fractions(cfg["exit_fractions"])
        out[i] = float(infinite_buffer_throughput(ii, q))
        if len(ii) > 1:
            by_k.setdefault(len(ii), []).append(i)
    for idx in by_k.values():
        n = lanes_per_config
        lanes = n * len(idx)
        ii = np.repeat([configs[i]["ii"] for i in idx], n, axis=0).astype(float)
        fr = np.repeat([configs[i]["exit_fractions"] for i in idx], n, axis=0).astype(float)
        depths = np.repeat([configs[i]["buffer_depths"] for i in idx], n, axis=0)
        d = np.repeat([float(configs[i].get("decision_latency", timing.decision_latency)) for i in idx], n)
        drain, span = (np.repeat([np.broadcast_to(np.asarray(configs[i].get(key, 0.0), dtype=float),
                                                  (len(configs[i]["ii"]) - 1,)) for i in idx], n, axis=0)
                       for key in ("drain", "write_span"))
        cum = np.cumsum(fr, axis=1)
        cum[:, -1] = np.inf
        exits = sticky_exits(np.random.default_rng(seed), cum, np.full(lanes, float(burst_length)), samples)
        per_lane = BufferTiming(timing.order, d, timing.read_latency, timing.release_latency, timing.head_interval,
                                drain=drain, write_span=span)
        warmup = samples // 5
        elapsed = simulate_flow(ii, depths, fr, burst_length, per_lane, samples, warmup, seed, exits=exits)
        for j, i in enumerate(idx):
            sl = slice(j * n, (j + 1) * n)
            q = reach_fractions(configs[i]["exit_fractions"])
            out[i] = min(out[i], pooled_throughput(elapsed[sl], samples, warmup, exits[:, sl], q[1:]))
    return out


def exact_chain_applies(timing: BufferTiming, n_stages: int) -> bool:
    return (n_stages == 2 and timing.order == "continue_only" and timing.decision_latency == 0
            and timing.release_latency == 0 and float(timing.read_latency).is_integer())


def path_latencies(stages) -> list[float]:
    """Cycles from a sample's entry to its result at each exit, in an empty pipeline."""
    out = []
    reach = 0.0
    for sc in stages:
        out.append(reach + sc.backbone_latency + sc.head_latency)
        reach += sc.backbone_latency + sc.boundary_latency
    return out


def mean_latency(latencies, exit_fractions) -> float:
    return float(np.dot(np.asarray(latencies, dtype=float), np.asarray(exit_fractions, dtype=float)))
