"""Sample-level event model of the EE dataflow with finite conditional buffers.

A max-plus recursion over samples (not cycles), vectorised in numpy over
independent lanes (replicas x configurations).  It evaluates the exact
timing rules below for any number of stages, so it also covers what the
closed-form Markov chain (buffer_chain.py) does not: decision latency,
samples that hold a buffer slot until their decision, more than two stages.

Timing rules (all parameters in BufferTiming; docs/hw_models.md):
  stage k starts a sample when it is free and the sample is available, works
  ii_k cycles, then writes it into buffer k; a full buffer holds the stage
  (it stays busy) until a slot frees: write >= removal of the sample `depth`
  places earlier + release_latency.
  slots (the RTL's cs_cond_buffer, default): every sample is written and
  holds one of cond_buffer_slots(depth) = depth + 1 slots; an exiting sample
  frees its slot once decided (decision_latency after the write), wherever
  it sits; a continuing one leaves in order of the continuing samples when
  stage k+1 takes it, and frees its slot `drain` cycles later (stage k+1
  reads its last beat).  Both kinds free in sample order among themselves,
  so the write waits for the (depth+1)-th latest of the two release streams;
  the slot is taken with the first beat, write_span cycles before the write,
  so a stage that finds none writes write_span cycles after one frees.
  in_order (the RTL's cs_cond_buffer before the slot rewrite, the HLS
  buffer): every sample is written; its exit
  decision is known decision_latency cycles after the write; samples leave
  in order, at most one per head_interval cycles, no earlier than
  read_latency after its write: an exiting sample is dropped as soon as it is
  the head and decided, a continuing one leaves when stage k+1 takes it.
  continue_only: the decision is known at the write and exiting samples are
  never written (the buffer holds continuing samples only).
  input_queue Q >= 1: stage k+1 has a FIFO of Q samples in front of it; a
  continuing head leaves the buffer once the continuing sample Q places
  earlier has started in stage k+1 (Q = 0: when stage k+1 itself is free).
  decision_capacity C >= 1: the exit head holds at most C undecided-or-
  unconsumed decisions, so the buffer acts as one of min(depth, C) samples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rtl_cost import cond_buffer_slots

BUFFER_ORDERS = ("slots", "in_order", "continue_only")


@dataclass(frozen=True)
class BufferTiming:
    order: str = "slots"
    decision_latency: float = 0.0   # cycles from a sample's write to its decision at the buffer
    read_latency: float = 1.0       # a written sample is readable this many cycles later
    release_latency: float = 1.0    # a freed slot accepts a write this many cycles later
    head_interval: float = 1.0      # at most one sample leaves the buffer per this many cycles
    input_queue: int | tuple = 0    # whole samples stage k+1 holds in front of its first block (its input
                                    # FIFO): a continuing head leaves the buffer when a queue slot is free
    decision_capacity: int | tuple = 0  # samples the exit-head path holds whose decision the buffer has not
                                    # consumed (0 = unlimited); caps the buffer's effective depth
    drain: float | tuple = 0.0      # `slots`: cycles from stage k+1 taking a continuing sample to its last
                                    # beat leaving the buffer (one number, one per boundary, or [lanes, K-1])
    write_span: float | tuple = 0.0  # `slots`: cycles from a sample's first beat into buffer k (where it
                                    # takes its slot) to its last (the write); same shapes as `drain`


def per_boundary(value, n_stages: int, dtype=np.int64) -> np.ndarray:
    """A BufferTiming field given as one number or one per boundary -> array [K-1] (int: slot
    counts; float: cycle counts)."""
    arr = np.asarray(value if value is not None else 0, dtype=dtype)
    return np.broadcast_to(arr, (max(n_stages - 1, 0),)) if arr.ndim == 0 else arr


def effective_depths(depths, capacity) -> np.ndarray:
    """min(depth, decision capacity) per boundary (capacity 0 = unlimited); depths [..., K-1]."""
    depths = np.asarray(depths, dtype=np.int64)
    cap = np.asarray(capacity if capacity is not None else 0, dtype=np.int64)
    if not np.any(cap):
        return depths
    cap = np.broadcast_to(cap, depths.shape[-1:]) if depths.ndim else cap
    return np.where(cap > 0, np.minimum(depths, cap), depths)


def _kth_latest(a: np.ndarray, b: np.ndarray, k: np.ndarray) -> np.ndarray:
    """k-th largest of the union of a and b per lane; a, b [lanes, m] each descending (latest
    first, padded with -inf), k [lanes] in 1..m: max over i of min(a_i, b_(k-i)), a_0 = b_0 = +inf."""
    lanes, m = a.shape
    top = np.full((lanes, 1), np.inf)
    a_ext, b_ext = np.concatenate([top, a], axis=1), np.concatenate([top, b], axis=1)
    i = np.arange(m + 1)[None, :]
    j = np.clip(k[:, None] - i, 0, m)
    vals = np.minimum(a_ext, np.take_along_axis(b_ext, j, axis=1))
    return np.where(i <= k[:, None], vals, -np.inf).max(axis=1)


def _latest(ring: np.ndarray, count: np.ndarray) -> np.ndarray:
    """[lanes, m] entries of a ring buffer, latest first (-1e18 where fewer were written)."""
    m = ring.shape[1]
    back = np.arange(1, m + 1)[None, :]
    idx = (count[:, None] - back) % m
    return np.where(back <= count[:, None], np.take_along_axis(ring, idx, axis=1), -1e18)


def _per_lane(value, lanes: int, n_stages: int) -> np.ndarray:
    """A cycle count per boundary as [lanes, K-1]: given as [lanes, K-1] (system_throughput_batch),
    or one value / one per boundary for every lane."""
    arr = value if np.ndim(value) == 2 else per_boundary(value, max(n_stages, 2), float)
    return np.broadcast_to(np.asarray(arr, dtype=float), (lanes, max(n_stages - 1, 1)))


def sticky_exits(rng: np.random.Generator, cum: np.ndarray, burst: np.ndarray, n: int) -> np.ndarray:
    """[n, lanes] exit indices from the sticky Markov source (redraw w.p. 1/L)."""
    lanes = cum.shape[0]
    fresh = rng.random((n, lanes)) < 1.0 / burst
    draws = (rng.random((n, lanes))[:, :, None] >= cum[None, :, :]).sum(axis=2)
    # forward-fill: each sample repeats the last fresh draw
    idx = np.where(fresh, np.arange(n)[:, None], 0)
    idx[0] = 0
    np.maximum.accumulate(idx, axis=0, out=idx)
    return np.take_along_axis(draws, idx, axis=0)


def simulate_flow(ii, depths, exit_fractions, burst, timing: BufferTiming = BufferTiming(),
                  samples: int = 4000, warmup: int = 800, seed: int = 0,
                  exits: np.ndarray | None = None, starts: np.ndarray | None = None) -> np.ndarray:
    """Cycles each lane took for its ``samples - 1 - warmup`` measured samples.

    ii [lanes, K], depths [lanes, K-1] (or [K-1] / scalar), exit_fractions
    [lanes, K], burst [lanes] or scalar.  Returns [lanes].  Pool lanes of one
    configuration with pooled_throughput (a ratio of sums: the mean of
    per-lane ratios is biased upwards under bursty exits).  ``exits``
    [samples, lanes] replaces the random source (tests replay one sequence
    through two models); ``starts`` [samples, lanes], if given, receives the
    cycle at which stage 0 starts each sample.
    """
    if timing.order not in BUFFER_ORDERS:
        raise ValueError(f"buffer order {timing.order!r} not in {BUFFER_ORDERS}")
    ii = np.atleast_2d(np.asarray(ii, dtype=float))
    lanes, n_st = ii.shape
    depths = np.broadcast_to(np.asarray(depths, dtype=np.int64), (lanes, max(n_st - 1, 0)))
    fr = np.broadcast_to(np.asarray(exit_fractions, dtype=float), (lanes, n_st))
    cum = np.cumsum(fr, axis=1)
    cum[:, -1] = np.inf
    burst = np.broadcast_to(np.asarray(burst, dtype=float), (lanes,))
    rng = np.random.default_rng(seed)
    if exits is None:
        exits = sticky_exits(rng, cum, burst, samples)

    lane = np.arange(lanes)
    neg = -1e18
    free = np.zeros((n_st, lanes))                     # when stage k can start its next sample
    depths = effective_depths(depths, timing.decision_capacity)
    max_d = int(depths.max()) if n_st > 1 else 1
    ring = np.full((max(n_st - 1, 1), lanes, max_d), neg)  # removal times of the last `depth` writes
    queues = per_boundary(timing.input_queue, n_st)
    q_len = np.maximum(np.concatenate([[1], queues]), 1).astype(np.int64)  # per stage (stage 0: unused)
    q_ring = np.full((n_st, lanes, int(q_len.max())), neg)  # stage k's start times of its last Q samples
    q_count = np.zeros((n_st, lanes), dtype=np.int64)
    written = np.zeros((max(n_st - 1, 1), lanes), dtype=np.int64)
    last_out = np.full((max(n_st - 1, 1), lanes), neg)     # removal time of the previous sample
    d, f, rel, hi = (timing.decision_latency, timing.read_latency, timing.release_latency, timing.head_interval)
    in_order = timing.order == "in_order"
    slots = timing.order == "slots"
    if slots:  # release times of exits and of continuing samples, each ring in sample order
        n_slots = cond_buffer_slots(depths)
        m_ring = int(n_slots.max()) if n_st > 1 else 1
        ring_exit = np.full((max(n_st - 1, 1), lanes, m_ring), neg)
        ring_cont = np.full((max(n_st - 1, 1), lanes, m_ring), neg)
        n_exit = np.zeros((max(n_st - 1, 1), lanes), dtype=np.int64)
        n_cont = np.zeros((max(n_st - 1, 1), lanes), dtype=np.int64)
        drain, span = _per_lane(timing.drain, lanes, n_st), _per_lane(timing.write_span, lanes, n_st)
    t_start0 = np.zeros(lanes)
    t_warm = np.zeros(lanes)

    for n in range(samples):
        e = exits[n]
        avail = np.zeros(lanes)  # stage 0: the source always has the next sample
        active = np.ones(lanes, dtype=bool)
        for k in range(n_st):
            start = np.maximum(free[k], avail)
            if k == 0:
                t_start0 = start
                if starts is not None:
                    starts[n] = start
                if n == warmup:
                    t_warm = start.copy()
            if k > 0 and queues[k - 1]:
                q_slot = q_count[k] % q_len[k]
                q_ring[k, lane, q_slot] = np.where(active, start, q_ring[k, lane, q_slot])
                q_count[k] += active
            finish = start + ii[:, k]
            if k == n_st - 1:
                free[k] = np.where(active, finish, free[k])
                break
            goes_on = active & (e > k)
            writes = active if (in_order or slots) else goes_on
            slot = written[k] % depths[:, k]
            if slots:  # a free slot: fewer than n_slots earlier samples still hold one
                oldest = _kth_latest(_latest(ring_cont[k], n_cont[k]), _latest(ring_exit[k], n_exit[k]),
                                     n_slots[:, k])
            else:
                oldest = np.where(written[k] >= depths[:, k], ring[k, lane, slot], neg)
            # `slots`: the slot is taken with the first beat, `write_span` before the write; a stall
            # there holds the stage, whose remaining beats follow once a slot is free
            w = np.maximum(finish, oldest + rel + (span[:, k] if slots else 0.0))
            free[k] = np.where(active, np.where(writes, w, finish), free[k])
            # removal: continuing samples when stage k+1 takes them, exits when decided
            head = last_out[k] + hi
            if queues[k]:  # the queue slot of the continuing sample Q places earlier
                room = np.where(q_count[k + 1] >= q_len[k + 1],
                                q_ring[k + 1, lane, q_count[k + 1] % q_len[k + 1]], neg)
            else:
                room = free[k + 1]
            if slots:
                take = np.maximum.reduce([w + d, w + f, head, room])
                drop = np.maximum(w + d, w + f)
                rc = n_cont[k] % m_ring
                ring_cont[k, lane, rc] = np.where(goes_on, take + drain[:, k], ring_cont[k, lane, rc])
                n_cont[k] += goes_on
                exits_here = active & ~goes_on
                rx = n_exit[k] % m_ring
                ring_exit[k, lane, rx] = np.where(exits_here, drop, ring_exit[k, lane, rx])
                n_exit[k] += exits_here
                last_out[k] = np.where(goes_on, take, last_out[k])  # in order among continuing samples
                avail = take
                active = goes_on
                continue
            if in_order:
                take = np.maximum.reduce([w + d, w + f, head, room])
                drop = np.maximum.reduce([w + d, w + f, head])  # in the buffer first, like a take
            else:
                take = np.maximum.reduce([w + f, head, room])
                drop = w
            out = np.where(goes_on, take, drop)
            ring[k, lane, slot] = np.where(writes, out, ring[k, lane, slot])
            last_out[k] = np.where(writes, out, last_out[k])
            written[k] += writes
            avail = take
            active = goes_on
    return t_start0 - t_warm


def pooled_throughput(elapsed: np.ndarray, samples: int, warmup: int,
                      exits: np.ndarray | None = None, reach: np.ndarray | None = None) -> float:
    """Input samples per cycle of lanes that simulate the same configuration.

    A ratio of sums.  With ``exits`` (the [samples, lanes] sequence that was
    replayed) and ``reach`` (q_k, k >= 1) the number of measured samples that
    reached each later stage serves as a control variate: most of the
    lane-to-lane spread under bursty exits comes from how many hard samples a
    lane happened to get, which is known exactly in expectation.
    """
    n = samples - 1 - warmup
    mean_t = float(elapsed.mean())
    if exits is not None and reach is not None and len(reach) and elapsed.size > len(reach) + 2:
        measured = exits[warmup:samples - 1]
        counts = np.stack([(measured >= k).sum(axis=0) for k in range(1, len(reach) + 1)], axis=1)
        dev = counts - n * np.asarray(reach, dtype=float)[None, :]
        centred = dev - dev.mean(axis=0)
        beta = np.linalg.lstsq(centred, elapsed - mean_t, rcond=None)[0]
        mean_t -= float(dev.mean(axis=0) @ beta)
    return float(n / mean_t)
