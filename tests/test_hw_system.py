"""System model vs an independent brute-force, cycle-by-cycle simulation.

The simulation below is written from the hardware rules, not from hw_models'
equations.  One cycle, for stage k from last to first:

  - a stage holding a finished sample outputs it: the last stage, or a sample
    whose exit is k under `continue_only`, just leaves (exit merge never
    blocks); otherwise the sample is written into buffer k if buffer k has
    room (with release=1 counted as at the start of the cycle: a slot freed in
    this cycle is usable in the next), else the stage holds it and stalls;
  - buffer k-1's head may leave (at most one sample per cycle): under
    `in_order` an exiting head is dropped once decided (decision = write +
    d cycles); a continuing head is taken by stage k when stage k is idle,
    decided, and written at least f cycles ago;
  - an idle stage 0 takes the next sample from the source (always there).
Then every working stage counts down one cycle.  Exit indices come from the
sticky Markov source: with probability 1/L a sample draws a fresh exit index
from the exit fractions, otherwise it repeats the previous sample's.  Many
independent lanes (cases x replicas) run at once in numpy.
"""
from __future__ import annotations

import numpy as np


def simulate(ii, depths, exit_fractions, burst, cycles: int, warmup: int, seed: int = 0,
             order: str = "continue_only", d: int = 0, f: int = 1, release: int = 0,
             exits: np.ndarray | None = None, hard: np.ndarray | None = None) -> np.ndarray:
    """Input samples per cycle for each lane.

    ii: [lanes, K] cycles per sample of each stage; depths: [lanes, K-1];
    exit_fractions: [lanes, K]; burst: [lanes].  ``exits`` [n, lanes]: replay
    these exit indices instead of drawing them; ``hard`` [lanes], if given,
    receives how many samples started after warm-up do not exit at exit 0.
    Returns [lanes].
    """
    rng = np.random.default_rng(seed)
    ii = np.asarray(ii, dtype=np.int64)
    lanes, n_stages = ii.shape
    depths = np.asarray(depths, dtype=np.int64).reshape(lanes, n_stages - 1)
    cum = np.cumsum(np.asarray(exit_fractions, dtype=float), axis=1)
    cum[:, -1] = 1.0 + 1e-12
    fresh_prob = 1.0 / np.asarray(burst, dtype=float)
    max_depth = int(depths.max())
    lane = np.arange(lanes)
    in_order = order == "in_order"

    busy = np.zeros((n_stages, lanes), dtype=bool)
    remaining = np.zeros((n_stages, lanes), dtype=np.int64)
    exit_of = np.zeros((n_stages, lanes), dtype=np.int64)
    fifo_exit = np.zeros((n_stages - 1, lanes, max_depth), dtype=np.int64)
    fifo_time = np.zeros((n_stages - 1, lanes, max_depth), dtype=np.int64)
    head = np.zeros((n_stages - 1, lanes), dtype=np.int64)
    count = np.zeros((n_stages - 1, lanes), dtype=np.int64)
    last_exit = _draw(rng, cum)
    started = np.zeros(lanes, dtype=np.int64)
    started_total = np.zeros(lanes, dtype=np.int64)

    for t in range(cycles):
        if t == warmup:
            started[:] = 0
            if hard is not None:
                hard[:] = 0
        count_at_start = count.copy()
        for k in range(n_stages - 1, -1, -1):
            finished = busy[k] & (remaining[k] == 0)
            if k < n_stages - 1:
                leaves = finished & (exit_of[k] == k) & (not in_order)
                room = (count_at_start[k] if release else count[k]) < depths[:, k]
                written = finished & ~leaves & room
                slot = (head[k] + count[k]) % max_depth
                fifo_exit[k, lane[written], slot[written]] = exit_of[k, written]
                fifo_time[k, lane[written], slot[written]] = t
                count[k] += written
                busy[k] &= ~(leaves | written)
            else:
                busy[k] &= ~finished
            idle = ~busy[k]
            if k == 0:
                fresh = rng.random(lanes) < fresh_prob
                new_exit = np.where(fresh, _draw(rng, cum), last_exit)
                if exits is not None:
                    new_exit = exits[np.minimum(started_total, len(exits) - 1), lane]
                last_exit = np.where(idle, new_exit, last_exit)
                exit_of[0] = np.where(idle, new_exit, exit_of[0])
                started += idle
                started_total += idle
                if hard is not None:
                    hard += idle & (new_exit > 0)
                takes = idle
            else:
                b = k - 1
                has = count[b] > 0
                h_exit = fifo_exit[b, lane, head[b]]
                h_time = fifo_time[b, lane, head[b]]
                decided = t >= h_time + d
                drops = has & decided & (h_exit == b) if in_order else np.zeros(lanes, dtype=bool)
                takes = idle & has & decided & (h_exit > b) & (t >= h_time + f)
                leave = drops | takes
                exit_of[k] = np.where(takes, h_exit, exit_of[k])
                head[b] = np.where(leave, (head[b] + 1) % max_depth, head[b])
                count[b] -= leave
            remaining[k] = np.where(takes, ii[:, k], remaining[k])
            busy[k] |= takes
        remaining -= busy & (remaining > 0)
    return started / (cycles - warmup)


def _draw(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    u = rng.random(cum.shape[0])
    return (u[:, None] >= cum).sum(axis=1)


# ---------------------------------------------------------------- the tests
import pytest  # noqa: E402

from hw_models.flow_sim import BufferTiming, simulate_flow, sticky_exits  # noqa: E402
from hw_models.system import system_throughput  # noqa: E402

A = 2  # stage-0 cycles per sample
# stage-1 cycles per sample near balanced load (q * b ~ a), where buffers matter
# most; p = 0.95 sits at q*b/a = 0.8: at exactly 1 with depth 64 the simulation
# needs ~1e5 samples to forget its empty start, far beyond a unit test.
BALANCED = {0.1: 2, 0.5: 4, 0.8: 10, 0.95: 32}
CHAIN = BufferTiming(order="continue_only", decision_latency=0, read_latency=1, release_latency=0)
IID = [(p, BALANCED[p], d, 1.0) for p in (0.1, 0.5, 0.8, 0.95) for d in (1, 64)] + \
      [(0.5, 4, 8, 1.0), (0.8, 10, 8, 1.0), (0.95, 32, 4, 1.0)]
BURSTY = [(p, BALANCED[p], d, 64.0) for p in (0.1, 0.5, 0.8, 0.95) for d in (1, 64)] + \
         [(0.5, 4, 8, 8.0), (0.8, 10, 8, 16.0), (0.95, 32, 8, 8.0), (0.5, 4, 16, 64.0)]


def _replicas(case):
    # rare-continue, long-burst cases have long regeneration cycles: more replicas
    p, _, _, burst = case
    return 160 if (p >= 0.8 and burst == 64.0) else (48 if burst > 1 else 24)


def _brute_force(cases, order, d, release, seed):
    """Brute-force throughput per case, pooled over replicas.

    Control variate: a replica's throughput is regressed on its excess of
    samples that do not exit (h - (1-p) n, mean ~0); under bursty exits that
    excess explains most of the replica-to-replica spread.
    """
    rows = [c for c in cases for _ in range(_replicas(c))]
    hard = np.zeros(len(rows), dtype=np.int64)
    cycles, warmup = 16000, 3200
    sim = simulate(np.array([[A, c[1]] for c in rows]), np.array([[c[2]] for c in rows]),
                   np.array([[c[0], 1 - c[0]] for c in rows]), np.array([c[3] for c in rows]),
                   cycles, warmup, seed, order=order, d=d, f=1, release=release, hard=hard)
    out = {}
    for c in cases:
        sel = np.array([r == c for r in rows])
        x = sim[sel]
        z = hard[sel] - (1 - c[0]) * x * (cycles - warmup)
        zc = z - z.mean()
        beta = (zc @ (x - x.mean())) / (zc @ zc) if zc @ zc > 0 else 0.0
        out[c] = float(x.mean() - beta * z.mean())
    return out


def _check(cases, timing, sim, tolerance):
    bad = []
    for c in cases:
        model = system_throughput([A, c[1]], [c[0], 1 - c[0]], [c[2]], c[3], timing)
        if abs(model - sim[c]) / sim[c] >= tolerance(c):
            bad.append((c, round(model, 5), round(sim[c], 5)))
    assert not bad, bad


def _tolerance(case):
    return 0.01 if case[3] == 1.0 else 0.03


def test_exact_chain_agrees_with_brute_force():
    """continue_only rules, two stages: the Markov chain (no sampling noise)."""
    _check(IID + BURSTY, CHAIN, _brute_force(IID + BURSTY, "continue_only", 0, 0, seed=1), _tolerance)


def test_in_order_buffer_agrees_with_brute_force():
    """The RTL's rules (every sample holds a slot until decided; leaves in order):
    the event model, with its own sampling noise, against the brute force."""
    cases = IID + BURSTY
    _check(cases, BufferTiming(order="in_order", decision_latency=4),
           _brute_force(cases, "in_order", 4, 1, seed=2), _tolerance)


def _replay(ii, depths, fr, burst, d, order, release, cycles, seed):
    """Both simulators on the same exit sequence: samples started before `cycles`."""
    lanes = len(ii)
    rng = np.random.default_rng(seed)
    cum = np.cumsum(np.asarray(fr, dtype=float), axis=1)
    cum[:, -1] = np.inf
    n = cycles + 1  # at most one sample per cycle
    exits = sticky_exits(rng, cum, np.asarray(burst, dtype=float), n)
    starts = np.zeros((n, lanes))
    simulate_flow(ii, depths, fr, burst, BufferTiming(order, d, 1, release, 1), samples=n, warmup=0,
                  exits=exits, starts=starts)
    flow_count = (starts < cycles).sum(axis=0)
    brute = simulate(ii, depths, fr, burst, cycles, 0, order=order, d=d, f=1, release=release, exits=exits)
    return flow_count, np.rint(brute * cycles).astype(int)


@pytest.mark.parametrize("order,release", [("in_order", 1), ("continue_only", 0), ("continue_only", 1)])
def test_event_model_replays_brute_force_exactly(order, release):
    """Same exit sequence in, same number of samples out, lane by lane."""
    rng = np.random.default_rng(5)
    lanes = 96
    k3 = rng.random(lanes) < 0.5
    ii = np.where(k3[:, None], rng.integers(1, 9, (lanes, 3)), np.c_[rng.integers(1, 9, (lanes, 2)), np.ones(lanes)])
    fr = rng.dirichlet([1, 1, 1], lanes)
    fr[~k3, 1] += fr[~k3, 2]
    fr[~k3, 2] = 0.0
    depths = rng.integers(1, 9, (lanes, 2))
    burst = rng.choice([1.0, 8.0, 64.0], lanes)
    for d in (0, 5):
        # two-stage lanes: a third stage that nothing reaches
        flow, brute = _replay(ii.astype(int), depths, fr, burst, d if order == "in_order" else 0, order,
                              release, 3000, seed=d)
        assert np.array_equal(flow, brute), np.flatnonzero(flow != brute)[:5]


def test_three_stages_agree_with_brute_force():
    ii = [2, 4, 8]
    cases = [([0.5, 0.25, 0.25], [4, 4], 4.0), ([0.2, 0.3, 0.5], [2, 16], 1.0), ([0.6, 0.3, 0.1], [8, 1], 16.0)]
    rows = [c for c in cases for _ in range(150)]
    sim = simulate(np.array([ii] * len(rows)), np.array([c[1] for c in rows]), np.array([c[0] for c in rows]),
                   np.array([c[2] for c in rows]), 16000, 3200, seed=7, order="in_order", d=3, f=1, release=1)
    for c in cases:
        measured = float(sim[[r == c for r in rows]].mean())
        model = system_throughput(ii, c[0], c[1], c[2], BufferTiming(order="in_order", decision_latency=3))
        assert abs(model - measured) / measured < 0.03, (c, model, measured)


def test_decision_latency_needs_buffer_slots():
    # every sample holds its slot for d cycles: with depth 1 the next write waits
    # for the decision (d = 10) plus the release latency (1): one sample per 11 cycles
    x = system_throughput([2, 2], [0.5, 0.5], [1], 1.0, BufferTiming(order="in_order", decision_latency=10))
    assert x == pytest.approx(1 / 11, rel=1e-3)


def test_infinite_buffer_bound_is_upper_bound():
    for p, b in BALANCED.items():
        inf = system_throughput([A, b], [p, 1 - p])
        for d in (1, 8, 64):
            assert system_throughput([A, b], [p, 1 - p], [d], 16.0) <= inf + 1e-12


@pytest.mark.parametrize("depth", [1, 4, 32])
def test_deeper_buffer_never_hurts(depth):
    x1 = system_throughput([3, 7], [0.6, 0.4], [depth], 8.0, CHAIN)
    x2 = system_throughput([3, 7], [0.6, 0.4], [depth * 2], 8.0, CHAIN)
    assert x2 >= x1 - 1e-12


def comparison_rows(seed: int = 11) -> list[dict]:
    """Model vs brute force on a few cases (benchmarks/brute_force_vs_model.py, docs/hw_models.md)."""
    cases = [(0.5, 4, 1, 1.0), (0.8, 10, 8, 1.0), (0.5, 4, 8, 64.0), (0.95, 32, 1, 64.0), (0.8, 10, 64, 64.0)]
    rows = []
    for label, order, d, release, timing in [("continue_only", "continue_only", 0, 0, CHAIN),
                                             ("in_order, d=4", "in_order", 4, 1, BufferTiming(order="in_order", decision_latency=4))]:
        sim = _brute_force(cases, order, d, release, seed)
        for c in cases:
            model = system_throughput([A, c[1]], [c[0], 1 - c[0]], [c[2]], c[3], timing)
            rows.append({"rules": label, "exit_rate": c[0], "stage1_cycles": c[1], "depth": c[2], "burst": c[3],
                         "infinite": system_throughput([A, c[1]], [c[0], 1 - c[0]]), "model": model,
                         "brute_force": sim[c], "diff": (model - sim[c]) / sim[c]})
    return rows


def comparison_table(seed: int = 11) -> list[str]:
    """The rows as markdown."""
    return [f"| {r['rules']} | {r['exit_rate']} | {r['stage1_cycles']} | {r['depth']} | {r['burst']:g} | "
            f"{r['infinite']:.4f} | {r['model']:.4f} | {r['brute_force']:.4f} | {100 * r['diff']:+.2f}% |"
            for r in comparison_rows(seed)]


if __name__ == "__main__":  # .venv/bin/python tests/test_hw_system.py
    print("\n".join(comparison_table()))


def test_slots_rule_frees_exits_behind_a_waiting_continuing_sample():
    # samples 0 and 1 continue (stage 1 busy 100 cycles with sample 0, sample 1 waits in the
    # buffer), the rest exit. In order, the exits queue behind sample 1 and stage 0 stalls; with
    # the slot buffer (depth 1 -> 2 slots) sample 1 keeps one slot and each exit holds the other
    # from its write to its decision (d = 4) + the release latency (1): one sample per 5 cycles
    exits = np.array([[1], [1]] + [[0]] * 10)
    starts = {}
    for order in ("slots", "in_order"):
        s = np.zeros((len(exits), 1))
        simulate_flow(np.array([[2.0, 100.0]]), [1], None, 1.0, BufferTiming(order=order, decision_latency=4),
                      samples=len(exits), warmup=0, exits=exits, starts=s)
        starts[order] = s[:, 0]
    assert np.all(np.diff(starts["slots"][3:]) == 5)
    assert starts["in_order"][6] > 100 > starts["slots"][6]


def test_slots_drain_holds_the_slot_longer():
    ii, fr = [10.0, 40.0], [0.8, 0.2]
    x = [system_throughput(ii, fr, [1], 1.0, BufferTiming(decision_latency=5, drain=drain)) for drain in (0.0, 20.0, 40.0)]
    assert x[0] >= x[1] >= x[2] and x[2] < x[0]
