"""Calibration meets its targets on the split it is given, by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.frontend import calibration as cal
from stage_ir import policies as pol
from stage_ir.errors import UserError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BITS = 10  # small logits keep the margin range exhaustively searchable


def make_data(seed: int, n: int = 80, c: int = 4, exits: int = 3, frac: int = 3):
    """Integer logits whose later exits are more often right (like a trained EE net)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = []
    for k in range(exits):
        z = rng.normal(0, 1, (n, c))
        z[np.arange(n), labels] += (k + 1) * 1.2 * rng.random(n)
        logits.append(np.clip(np.round(z * 2**frac), -(2 ** (BITS - 1)), 2 ** (BITS - 1) - 1).astype(np.int64))
    return logits, labels


def accuracy_and_cost(policy, logits, labels, tables, thresholds, costs=None):
    """Independent of calibration.evaluate: straight from the integer view."""
    view = pol.integer_view(policy, logits, tables, thresholds)
    c = np.arange(1, len(logits) + 1) if costs is None else np.asarray(costs, dtype=float)
    return float(np.mean(view.exit_class == labels)), float(np.mean(c[view.exit_index])), view


def all_thresholds(policy, tables, k):
    lo, hi = pol.threshold_range(policy, tables, k)
    return range(lo, hi + 1)


case = st.tuples(st.sampled_from(pol.POLICIES), st.integers(0, 10**6), st.integers(2, 4))


@given(case, st.floats(0.0, 15.0))
@FAST
def test_accuracy_target_met(c, delta: float) -> None:
    policy, seed, exits = c
    logits, labels = make_data(seed, exits=exits)
    tables = pol.make_tables(policy, [3] * exits, 4, logit_bits=BITS)
    res = cal.calibrate(policy, logits, labels, tables, accuracy_delta=delta)
    acc, cost, view = accuracy_and_cost(policy, logits, labels, tables, res["thresholds"])
    final = float(np.mean(view.scores.classes[-1] == labels))
    assert acc >= final - delta / 100 - 1e-12
    val = res["validation"]
    assert val["overall_accuracy"] == pytest.approx(acc) and val["mean_cost"] == pytest.approx(cost)
    assert val["final_accuracy"] == pytest.approx(final)
    assert sum(e["exit_fraction"] for e in val["exits"]) == pytest.approx(1.0)
    assert json.loads(json.dumps(res)) == res


@pytest.mark.parametrize("policy", pol.POLICIES)
@pytest.mark.parametrize("seed", range(3))
def test_single_early_exit_is_optimal(policy: str, seed: int) -> None:
    """With one early exit the search is exhaustive: compare with trying every integer threshold."""
    logits, labels = make_data(seed, n=60, exits=2)
    tables = pol.make_tables(policy, [3, 3], 4, logit_bits=BITS)
    scores = pol.exit_scores(policy, logits, tables)  # once: thousands of thresholds follow
    costs = np.array([1.0, 3.0])
    views = {t: pol.view_from_scores(scores, [t]) for t in all_thresholds(policy, tables, 0)}
    points = [(t, float(np.mean(v.exit_class == labels)), float(np.mean(costs[v.exit_index])))
              for t, v in views.items()]
    final_acc = float(np.mean(pol.exit_scores(policy, logits, tables).classes[-1] == labels))
    for delta in (0.0, 2.0, 10.0):
        best = min(cost for _, acc, cost in points if acc >= final_acc - delta / 100 - 1e-12)
        thr = cal.calibrate_accuracy(policy, logits, labels, tables, delta, costs=[1, 3])
        assert accuracy_and_cost(policy, logits, labels, tables, thr, [1, 3])[1] == pytest.approx(best)
    for budget in (1.0, 1.5, 2.2, 3.0):
        best = max(acc for _, acc, cost in points if cost <= budget + 1e-12)
        thr = cal.calibrate_budget(policy, logits, labels, tables, budget, costs=[1, 3])
        acc, cost, _ = accuracy_and_cost(policy, logits, labels, tables, thr, [1, 3])
        assert cost <= budget + 1e-12 and acc == pytest.approx(best)
    for target in (0.0, 0.25, 0.5, 0.9, 1.0):
        closest = min(abs(float(np.mean(v.exit_index == 0)) - target) for v in views.values())
        res = cal.calibrate(policy, logits, labels, tables, exit_fractions=[target])
        assert abs(res["validation"]["exits"][0]["exit_fraction"] - target) == pytest.approx(closest)


@given(case, st.floats(0.0, 1.0))
@FAST
def test_budget_met(c, where: float) -> None:
    policy, seed, exits = c
    logits, labels = make_data(seed, exits=exits)
    tables = pol.make_tables(policy, [3] * exits, 4, logit_bits=BITS)
    costs = list(np.cumsum(np.arange(1, exits + 1) * 100.0))
    budget = costs[0] + where * (costs[-1] - costs[0])
    res = cal.calibrate(policy, logits, labels, tables, budget=budget, costs=costs)
    acc, cost, _ = accuracy_and_cost(policy, logits, labels, tables, res["thresholds"], costs)
    assert cost <= budget + 1e-9
    assert res["validation"]["mean_cost"] == pytest.approx(cost)
    # never worse than not exiting early when that is affordable
    if budget >= costs[-1]:
        assert acc >= res["validation"]["final_accuracy"]


@given(case, st.data())
@FAST
def test_exit_rates_reported(c, data) -> None:
    policy, seed, exits = c
    logits, labels = make_data(seed, exits=exits)
    tables = pol.make_tables(policy, [3] * exits, 4, logit_bits=BITS)
    fractions = data.draw(st.lists(st.floats(0.0, 1.0 / exits), min_size=exits - 1, max_size=exits - 1))
    res = cal.calibrate(policy, logits, labels, tables, exit_fractions=fractions)
    view = pol.integer_view(policy, logits, tables, res["thresholds"])
    for k, e in enumerate(res["validation"]["exits"]):
        assert e["exit_fraction"] == pytest.approx(float(np.mean(view.exit_index == k)))


def test_rates_hit_continuous_targets() -> None:
    """Distinct scores: every fraction is reachable to within one sample."""
    logits, labels = make_data(7, n=400, c=10, exits=4, frac=8)
    tables = pol.make_tables("max_softmax", [8] * 4, 10, logit_bits=BITS)
    res = cal.calibrate("max_softmax", logits, labels, tables, exit_fractions=[0.3, 0.2, 0.1])
    reached = [e["exit_fraction"] for e in res["validation"]["exits"][:3]]
    assert np.allclose(reached, [0.3, 0.2, 0.1], atol=3 / 400)


def test_sweep_and_frontier() -> None:
    logits, labels = make_data(11, n=200, exits=3)
    for policy in pol.POLICIES:
        tables = pol.make_tables(policy, [3] * 3, 4, logit_bits=BITS)
        points = cal.sweep(policy, logits, labels, tables)
        assert points and json.loads(json.dumps(points)) == points
        for p in points[:: max(1, len(points) // 5)]:
            acc, cost, _ = accuracy_and_cost(policy, logits, labels, tables, p["thresholds"])
            assert p["overall_accuracy"] == pytest.approx(acc) and p["mean_cost"] == pytest.approx(cost)
            assert len(p["exit_fractions"]) == 3 and sum(p["exit_fractions"]) == pytest.approx(1.0)
        front = cal.frontier(policy, logits, labels, tables)
        costs = [p["mean_cost"] for p in front]
        accs = [p["overall_accuracy"] for p in front]
        assert costs == sorted(costs) and accs == sorted(accs) and len(set(accs)) == len(accs)


def test_calibration_is_fast_enough() -> None:
    import time

    logits, labels = make_data(5, n=3000, c=10, exits=4, frac=6)
    tables = pol.make_tables("entropy", [6] * 4, 10, logit_bits=BITS)
    start = time.perf_counter()
    cal.calibrate("entropy", logits, labels, tables, accuracy_delta=1.0)
    assert time.perf_counter() - start < 5.0


# --------------------------------------------------------------------------- errors


def _setup(policy: str = "max_softmax"):
    logits, labels = make_data(0, exits=3)
    return logits, labels, pol.make_tables(policy, [3] * 3, 4, logit_bits=BITS)


def test_unreachable_accuracy_names_best() -> None:
    logits, labels, tables = _setup()
    with pytest.raises(UserError, match=r"best reachable is \d+\.\d+%.*raise accuracy_delta"):
        cal.calibrate("max_softmax", logits, labels, tables, accuracy_delta=-50.0)


def test_budget_too_low() -> None:
    logits, labels, tables = _setup()
    with pytest.raises(UserError, match="below the lowest reachable mean cost"):
        cal.calibrate("max_softmax", logits, labels, tables, budget=5.0, costs=[10, 20, 30])
    with pytest.raises(UserError, match="needs costs"):
        cal.calibrate("max_softmax", logits, labels, tables, budget=5.0)
    with pytest.raises(UserError, match="costs must be 3"):
        cal.calibrate("max_softmax", logits, labels, tables, budget=5.0, costs=[1, 2])


@pytest.mark.parametrize("fractions", [[0.5], [0.7, 0.6], [-0.1, 0.2], [float("nan"), 0.1]])
def test_bad_exit_fractions(fractions) -> None:
    logits, labels, tables = _setup()
    with pytest.raises(UserError, match="exit_fractions must be 2 fractions"):
        cal.calibrate("max_softmax", logits, labels, tables, exit_fractions=fractions)


def test_exactly_one_target_and_known_policy() -> None:
    logits, labels, tables = _setup()
    with pytest.raises(UserError, match="exactly one calibration target"):
        cal.calibrate("max_softmax", logits, labels, tables)
    with pytest.raises(UserError, match="exactly one calibration target"):
        cal.calibrate("max_softmax", logits, labels, tables, accuracy_delta=1.0, budget=2.0, costs=[1, 2, 3])
    with pytest.raises(UserError, match="unknown exit policy"):
        cal.calibrate("confidence", logits, labels, tables, accuracy_delta=1.0)
    with pytest.raises(UserError, match="labels"):
        cal.calibrate("max_softmax", logits, labels[:-1], tables, accuracy_delta=1.0)
