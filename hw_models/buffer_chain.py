"""Exact throughput of one stage boundary with a finite conditional buffer.

Timing model (docs/hw_models.md, "System timing model"): an upstream server
emits one sample every ``a`` cycles when not blocked; a sample continues with a
probability given by the exit source, otherwise it leaves at this exit; a
continuing sample is written to the conditional buffer (``depth`` samples) if
it has room, else the upstream holds it (and stalls) until a slot frees; the
downstream server takes the buffer head as soon as it is idle and works ``b``
cycles on it.  In one cycle the downstream takes first, then the upstream
writes, so a depth-1 buffer between two equally fast stages never bubbles.
A written sample becomes readable ``read_latency`` cycles later (a registered
FIFO: 1), so a sample written into an empty buffer while the downstream is
idle costs the downstream that many idle cycles.

Because the downstream service time is deterministic, the number of samples
downstream is ceil(W / b) where W is its remaining work in cycles.  The
embedded chain at upstream write instants over (W, decision) is therefore
exact and small: W takes the values 0..(depth+1)*b.

Exit decisions come from the "sticky" Markov source: with probability 1/L the
next sample draws a fresh decision (continue with probability c), otherwise it
repeats the previous one.  L = 1 is i.i.d.; the mean run of continuing samples
is L / (1 - c).
"""
from __future__ import annotations

from math import gcd

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

# Above this many work levels the chain is solved on a coarser time grid
# (a and b scaled by the same factor): a relative error of about 1/levels.
MAX_WORK_LEVELS = 32768


def _reduce(a: float, b: float, f: int, max_units: int) -> tuple[int, int, int]:
    """Integer (a, b, f) on a common time grid, larger of a, b at most max_units."""
    if float(a).is_integer() and float(b).is_integer():
        ia, ib = int(a), int(b)
        g = gcd(gcd(ia, ib), f)
        if max(ia, ib) // g <= max_units:
            return ia // g, ib // g, f // g
    scale = max_units / max(a, b)
    return max(1, round(a * scale)), max(1, round(b * scale)), int(np.ceil(f * scale))


def boundary_throughput(a: float, b: float, depth: int, continue_prob: float,
                        burst_length: float = 1.0, read_latency: int = 1,
                        max_units: int | None = None) -> float:
    """Upstream samples per cycle through a boundary (a, b in cycles per sample).

    Exact for integer a >= read_latency and b under the timing model above; for large or
    non-integer a, b the two are scaled together to at most ``max_units``
    (default: so that (depth + 1) * b stays below MAX_WORK_LEVELS).
    """
    if a <= 0 or b <= 0:
        raise ValueError("a and b must be positive")
    c = float(continue_prob)
    if c <= 0.0:
        return 1.0 / a
    return float(boundary_throughput_many([a], [b], [depth], [c], burst_length, read_latency, max_units)[0])


def boundary_throughput_many(a, b, depth, continue_prob, burst_length: float = 1.0,
                             read_latency: int = 1, max_units: int | None = None) -> np.ndarray:
    """boundary_throughput for many boundaries at once: one sparse solve for all."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    depth = np.asarray(depth, dtype=int)
    c = np.asarray(continue_prob, dtype=float)
    a, b, depth, c = np.broadcast_arrays(a, b, depth, c)
    out = np.empty(a.shape)
    keys = []
    for i in np.ndindex(a.shape):
        if c[i] <= 0.0:
            out[i] = 1.0 / a[i]
            continue
        units = max_units or max(8, MAX_WORK_LEVELS // (int(depth[i]) + 1))
        ia, ib, lat = _reduce(float(a[i]), float(b[i]), int(read_latency), units)
        keys.append((i, (ia, ib, int(depth[i]), round(float(c[i]), 12), float(burst_length), lat)))
    _solve_missing([k for _, k in keys])
    for i, k in keys:
        out[i] = _CACHE[k] * k[0] / a[i]  # back from the scaled time grid to cycles
    # a rescaled grid can overshoot by its rounding; the infinite-buffer rate bounds it
    return np.minimum(out, np.minimum(1.0 / a, 1.0 / np.maximum(c * b, 1e-300)))


_CACHE: dict[tuple, float] = {}


def _solve_missing(keys: list[tuple]) -> None:
    """Solve every uncached chain in one block-diagonal sparse system."""
    todo = sorted({k for k in keys if k not in _CACHE})
    if not todo:
        return
    if len(_CACHE) > 200_000:
        _CACHE.clear()
    blocks, offset = [], 0
    rows, cols, vals = [], [], []
    for key in todo:
        a, b, depth, c, burst, lat = key
        if c >= 1.0:  # nothing exits: a deterministic tandem
            _CACHE[key] = 1.0 / max(a, b)
            continue
        r, cl, v, tau, n, local_anchor = _chain(a, b, depth, c, burst, lat)
        rows.append(r + offset)
        cols.append(cl + offset)
        vals.append(v)
        blocks.append((key, offset, n, tau, offset + local_anchor))
        offset += n
    if not blocks:
        return
    # Balance equations pi (P - I) = 0, i.e. rows of P^T - I.  Per block the
    # equation of an anchor state is replaced by pi[anchor] = 1 (scaled away
    # below).  Both anchors, (exit, W = 0) and (continue, W = full), are
    # recurrent: from any state a run of exits drains the downstream to W = 0 and
    # a run of continues fills it, so the chain has one recurrent class and the
    # solution is unique.  A single-entry row keeps the LU factors sparse.
    r = np.concatenate(cols)
    cl = np.concatenate(rows)
    v = np.concatenate(vals)
    anchor = np.zeros(offset, dtype=bool)
    anchor[[blk[4] for blk in blocks]] = True
    keep = ~anchor[r]
    diag = np.flatnonzero(~anchor)
    first = np.flatnonzero(anchor)
    a_mat = sp.csc_matrix((np.concatenate([v[keep], -np.ones(len(diag)), np.ones(len(first))]),
                           (np.concatenate([r[keep], diag, first]), np.concatenate([cl[keep], diag, first]))),
                          shape=(offset, offset))
    rhs = anchor.astype(float)
    pi = spla.spsolve(a_mat, rhs)
    for key, off, n, tau, _ in blocks:
        block = np.clip(pi[off:off + n], 0.0, None)
        _CACHE[key] = 1.0 / float(block @ tau / block.sum())


def _chain(a: int, b: int, depth: int, c: float, burst: float, read_latency: int):
    """Transitions (rows, cols, probabilities) and expected next cycle time per state."""
    cap = depth * b            # write allowed iff W <= cap
    n_w = max(cap, read_latency) + b + 1
    w = np.arange(n_w)
    after_service = np.maximum(w - a, 0)
    blocked = np.maximum(after_service - cap, 0)
    # a sample the downstream could start sooner than read_latency waits for it
    w_continue = np.maximum(np.minimum(after_service, cap), read_latency) + b
    w_exit = after_service
    # decision chain over samples: state 0 = exit, 1 = continue (sticky source)
    stay = 1.0 - 1.0 / burst
    fresh = np.array([1.0 - c, c]) / burst
    trans = np.array([[stay + fresh[0], fresh[1]], [fresh[0], stay + fresh[1]]])
    tau_next = np.stack([np.full(n_w, float(a)), a + blocked.astype(float)])  # [next decision, W]
    rows, cols, vals, tau = [], [], [], []
    for s in (0, 1):  # state index = s * n_w + W; the successor depends on the next decision
        for s2, target in ((0, w_exit), (1, w_continue)):
            rows.append(s * n_w + w)
            cols.append(s2 * n_w + target)
            vals.append(np.full(n_w, trans[s, s2]))
        tau.append(trans[s] @ tau_next)
    # anchor on a likely state so no probability underflows: when overloaded
    # (c*b > a, hence b > a) a just-filled buffer (continue, W = depth*b + b),
    # which a run of continues always reaches; otherwise (exit, W = 0)
    anchor = n_w + cap + b if c * b > a else 0
    return (np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), np.concatenate(tau),
            2 * n_w, anchor)
