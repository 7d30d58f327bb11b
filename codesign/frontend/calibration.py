"""Per-exit threshold calibration on the integer view (validation split).

Three targets:
  (a) accuracy: the cheapest thresholds (lowest mean cost, i.e. most samples
      leaving early) whose overall accuracy is >= final accuracy - delta;
  (b) exit rates: thresholds that send a given fraction out at each exit;
  (c) budget: the most accurate thresholds with mean cost <= budget.

Search. Every policy's decision at early exit k is monotone in its threshold,
so each sample has a *level* r_k (the least aggressive threshold at which it
leaves at k) and exit k lets it go iff the exit's level a_k >= r_k (levels
are the thresholds themselves for max_softmax / entropy and their negation for
margin / patience, so "larger level = more samples leave"). With the other
exits fixed, moving a_k over the sorted distinct r_k changes the outcome one
group of samples at a time, so one sort and two cumulative sums give the exact
accuracy and cost of *every* candidate threshold of exit k. On top of that:

  * coordinate descent: repeatedly replace one exit's threshold by its best
    candidate under the objective, only on strict improvement (so it ends);
  * (a) and (c) start that descent from "no early exit" and from the local
    optima of the Lagrangian  n_correct - mu * cost  for a grid of mu
    (a cheap trace of the accuracy/cost frontier), and keep the best result;
  * (b) goes exit by exit: exit k's fraction depends only on exits < k.

For one early exit the search is exhaustive, hence optimal; for more it is a
local search (no optimality guarantee). The chosen thresholds are always
re-evaluated with `policies.integer_view` (the hardware semantics) and the
reported validation figures come from that evaluation, so a target that is
reported as met is met on the validation split by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from stage_ir import policies as pol
from stage_ir.errors import UserError

# Lagrange multipliers tried when tracing the accuracy/cost frontier, in units of
# "correct samples given up per (max cost - min cost) saved per sample".
MU_GRID = (0.0, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0)
_EPS = 1e-9  # tolerance on float targets (delta in pp, budgets): never on counts


@dataclass
class _Problem:
    policy: str
    scores: pol.IntegerScores
    levels: np.ndarray  # [K-1, N] the level at which each sample leaves at each early exit
    never: np.ndarray  # [K-1] a level at which nobody leaves
    correct: np.ndarray  # [K, N] 0/1
    costs: np.ndarray  # [K]

    @property
    def n(self) -> int:
        return self.correct.shape[1]


# --------------------------------------------------------------------------- levels


def _flips(policy: str) -> bool:
    # a policy that exits on score >= threshold: a smaller threshold is more aggressive.
    return not pol.get(policy).exits_on_low


def threshold_to_level(policy: str, threshold: int) -> int:
    return -int(threshold) if _flips(policy) else int(threshold)


level_to_threshold = threshold_to_level  # the map is its own inverse


def sample_levels(scores: pol.IntegerScores) -> np.ndarray:
    """[K-1, N]: the least aggressive level at which each sample leaves at each early exit."""
    return pol.get(scores.policy).sample_levels(scores.score, scores.sum_e)


# --------------------------------------------------------------------------- problem set-up


def _check_labels(labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"labels have shape {labels.shape} ({labels.dtype}); expected {n} integer class indices")
    if n == 0:
        raise UserError("the calibration split is empty; give at least one validation sample")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise UserError(f"labels must be class indices in [0, {num_classes - 1}]")
    return labels.astype(np.int64)


def _check_costs(costs: Sequence[float] | None, num_exits: int) -> np.ndarray:
    if costs is None:
        return np.arange(1, num_exits + 1, dtype=np.float64)  # stages run before leaving
    c = np.asarray(costs, dtype=np.float64)
    if c.shape != (num_exits,) or not np.all(np.isfinite(c)) or np.any(c < 0):
        raise UserError(f"costs must be {num_exits} finite non-negative numbers (cost of leaving at each exit, "
                        f"e.g. cumulative MACs); got {list(costs)}")
    return c


def _problem(policy: str, logits: Sequence[np.ndarray], labels: np.ndarray, tables: dict[str, Any],
             costs: Sequence[float] | None) -> _Problem:
    scores = pol.exit_scores(policy, logits, tables)
    k_exits, n = scores.classes.shape
    labels = _check_labels(labels, n, tables["num_classes"])
    never = np.array([threshold_to_level(policy, pol.never_threshold(policy, tables, k)) for k in range(k_exits - 1)])
    return _Problem(policy, scores, sample_levels(scores), never,
                    (scores.classes == labels[None, :]).astype(np.int64), _check_costs(costs, k_exits))


def _exit_index(prob: _Problem, a: np.ndarray, skip: int | None = None) -> np.ndarray:
    """Exit index under levels `a` using the integer decisions; exit `skip` treated as never."""
    decisions = np.zeros_like(prob.levels, dtype=bool)
    for k in range(len(a)):
        if k != skip:
            decisions[k] = pol.decide(prob.scores, k, level_to_threshold(prob.policy, a[k]))
    return pol.outcome(prob.scores, decisions)[0]


def _totals(prob: _Problem, a: np.ndarray) -> tuple[int, float]:
    ex = _exit_index(prob, a)
    return int(prob.correct[ex, np.arange(prob.n)].sum()), float(prob.costs[ex].sum())


@dataclass
class _Options:
    """Every distinct outcome of moving one exit's level, the others fixed."""

    levels: np.ndarray  # ascending; [0] is "never"
    n_correct: np.ndarray
    cost: np.ndarray  # total over samples
    n_exit: np.ndarray  # samples leaving at this exit


def _options(prob: _Problem, a: np.ndarray, k: int) -> _Options:
    ex = _exit_index(prob, a, skip=k)
    idx = np.arange(prob.n)
    free = ex > k  # samples that reach exit k
    r = prob.levels[k][free]
    order = np.argsort(r, kind="stable")
    r = r[order]
    d_correct = (prob.correct[k, free] - prob.correct[ex[free], idx[free]])[order]
    d_cost = (prob.costs[k] - prob.costs[ex[free]])[order]
    ends = np.flatnonzero(np.r_[np.diff(r) != 0, True]) if r.size else np.zeros(0, dtype=np.int64)
    return _Options(
        levels=np.r_[prob.never[k], r[ends]].astype(np.int64),
        n_correct=prob.correct[ex, idx].sum() + np.r_[0, np.cumsum(d_correct)[ends]],
        cost=prob.costs[ex].sum() + np.r_[0.0, np.cumsum(d_cost)[ends]],
        n_exit=np.r_[0, ends + 1],
    )


# --------------------------------------------------------------------------- search

# An objective maps (n_correct, total_cost) arrays to a tuple of key arrays; larger is better,
# compared lexicographically.
Objective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]


def _best(keys: tuple[np.ndarray, ...]) -> int:
    # lexsort's primary key is its last one; the negated index as the weakest
    # key makes the last element, among full ties, the lowest index (the least
    # aggressive threshold).
    n = len(keys[0])
    order = np.lexsort((-np.arange(n),) + tuple(reversed(keys)))
    return int(order[-1])


def _key(keys: tuple[np.ndarray, ...], i: int = 0) -> tuple[float, ...]:
    return tuple(float(k[i]) for k in keys)


def _better(keys: tuple[np.ndarray, ...], i: int, j: int) -> bool:
    return _key(keys, i) > _key(keys, j)


def _descend(prob: _Problem, a: np.ndarray, objective: Objective, first: int = 0,
             max_passes: int = 100) -> np.ndarray:
    """Coordinate descent from `a`, visiting exits first, first + 1, ... cyclically."""
    a = a.copy()
    order = [(first + i) % len(a) for i in range(len(a))]
    for _ in range(max_passes):
        changed = False
        for k in order:
            opt = _options(prob, a, k)
            keys = objective(opt.n_correct, opt.cost)
            cur = int(np.searchsorted(opt.levels, a[k], side="right")) - 1
            best = _best(keys)
            if _better(keys, best, cur):
                a[k] = opt.levels[best]
                changed = True
        if not changed:
            break
    return a


def _lagrangian(prob: _Problem, mu: float) -> Objective:
    scale = max(float(prob.costs.max() - prob.costs.min()), 1e-12)
    return lambda nc, cost: (nc - mu * cost / scale,)


def _frontier_starts(prob: _Problem) -> list[np.ndarray]:
    starts = [prob.never.copy()]
    for mu in MU_GRID:
        a = _descend(prob, prob.never, _lagrangian(prob, mu))
        if not any(np.array_equal(a, s) for s in starts):
            starts.append(a)
    return starts


def _search(prob: _Problem, objective: Objective, starts: list[np.ndarray] | None = None) -> np.ndarray:
    """Best local optimum of `objective` over all starts and first coordinates.

    Starting the descent at every exit matters: a greedy first move at exit 0
    can send everyone out there and leave later exits nothing to decide."""
    best, best_keys = None, None
    runs = [(s, first) for s in (starts or _frontier_starts(prob)) for first in range(len(prob.never))]
    for start, first in runs:
        a = _descend(prob, start, objective, first)
        nc, cost = _totals(prob, a)
        keys = objective(np.array([nc]), np.array([cost]))
        if best is None or _key(keys) > _key(best_keys):
            best, best_keys = a, keys
    return best


def _accuracy_objective(need: float) -> Objective:
    def keys(nc: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, ...]:
        ok = nc >= need - _EPS
        # feasible first; among feasible the cheapest, among infeasible the most accurate
        return ok.astype(float), np.where(ok, -cost, nc), nc.astype(float)
    return keys


def _budget_objective(limit: float) -> Objective:
    def keys(nc: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, ...]:
        ok = cost <= limit + _EPS * max(1.0, abs(limit))
        return ok.astype(float), np.where(ok, nc, -cost), -cost
    return keys


def _thresholds(prob: _Problem, a: np.ndarray) -> list[int]:
    return [int(level_to_threshold(prob.policy, x)) for x in a]


# --------------------------------------------------------------------------- public API


def evaluate(policy: str, logits: Sequence[np.ndarray], labels: np.ndarray, tables: dict[str, Any],
             thresholds: Sequence[int], costs: Sequence[float] | None = None) -> dict[str, Any]:
    """Validation figures of integer thresholds, from `policies.integer_view`.

    exits[k]: exit_fraction (of all samples), accuracy (of the samples leaving
    there; null if none), accuracy_alone (exit k's class on every sample).
    """
    view = pol.integer_view(policy, logits, tables, thresholds)
    return _summarise(view, labels, tables, costs)


def _summarise(view: pol.IntegerView, labels: np.ndarray, tables: dict[str, Any],
               costs: Sequence[float] | None) -> dict[str, Any]:
    num_exits, n = view.scores.classes.shape
    labels = _check_labels(labels, n, tables["num_classes"])
    c = _check_costs(costs, num_exits)
    exits = []
    for k in range(num_exits):
        here = view.exit_index == k
        exits.append({
            "exit_fraction": float(here.mean()),
            "accuracy": float((view.exit_class[here] == labels[here]).mean()) if here.any() else None,
            "accuracy_alone": float((view.scores.classes[k] == labels).mean()),
        })
    return {
        "overall_accuracy": float((view.exit_class == labels).mean()),
        "final_accuracy": exits[-1]["accuracy_alone"],
        "exits": exits,
        "mean_cost": float(c[view.exit_index].mean()),
    }


def calibrate_accuracy(policy: str, logits: Sequence[np.ndarray], labels: np.ndarray, tables: dict[str, Any],
                       accuracy_delta: float, costs: Sequence[float] | None = None) -> list[int]:
    """Cheapest thresholds with overall accuracy >= final accuracy - delta (pp)."""
    prob = _problem(policy, logits, labels, tables, costs)
    final_correct = int(prob.correct[-1].sum())
    need = final_correct - float(accuracy_delta) / 100.0 * prob.n
    a = _search(prob, _accuracy_objective(need))
    nc, _ = _totals(prob, a)
    if nc < need - _EPS:
        best = 100.0 * nc / prob.n
        final = 100.0 * final_correct / prob.n
        raise UserError(f"no {policy} thresholds reach accuracy {final - accuracy_delta:.2f}% (final exit "
                        f"{final:.2f}% - {accuracy_delta} pp); the best reachable is {best:.2f}%: "
                        f"raise accuracy_delta to at least {final - best:.2f}")
    return _thresholds(prob, a)


def calibrate_exit_rates(policy: str, logits: Sequence[np.ndarray], labels: np.ndarray, tables: dict[str, Any],
                         exit_fractions: Sequence[float]) -> list[int]:
    """Thresholds whose exit fractions (of all samples, per early exit) are closest to the target,
    chosen exit by exit (ties: the less aggressive threshold)."""
    prob = _problem(policy, logits, labels, tables, None)
    f = np.asarray(exit_fractions, dtype=np.float64)
    if f.shape != prob.never.shape or np.any(~np.isfinite(f)) or np.any(f < 0) or f.sum() > 1 + _EPS:
        raise UserError(f"exit_fractions must be {len(prob.never)} fractions in [0, 1] (one per early exit) "
                        f"summing to at most 1; got {list(exit_fractions)}")
    a = prob.never.copy()
    for k in range(len(a)):
        opt = _options(prob, a, k)  # later exits are still "never": they do not affect exit k
        a[k] = opt.levels[int(np.argmin(np.abs(opt.n_exit - f[k] * prob.n)))]
    return _thresholds(prob, a)


def calibrate_budget(policy: str, logits: Sequence[np.ndarray], labels: np.ndarray, tables: dict[str, Any],
                     budget: float, costs: Sequence[float]) -> list[int]:
    """Most accurate thresholds whose mean cost per sample is <= budget."""
    if costs is None:
        raise UserError("a cost budget needs costs: one cost per exit (e.g. cumulative MACs up to each exit)")
    prob = _problem(policy, logits, labels, tables, costs)
    limit = float(budget) * prob.n
    a = _search(prob, _budget_objective(limit))
    _, cost = _totals(prob, a)
    if cost > limit + _EPS * max(1.0, abs(limit)):
        raise UserError(f"mean cost budget {budget} is below the lowest reachable mean cost "
                        f"{cost / prob.n:.6g} with {policy}; raise the budget to at least that")
    return _thresholds(prob, a)


def calibrate(policy: str, logits: Sequence[np.ndarray], labels: np.ndarray, tables: dict[str, Any], *,
              accuracy_delta: float | None = None, exit_fractions: Sequence[float] | None = None,
              budget: float | None = None, costs: Sequence[float] | None = None) -> dict[str, Any]:
    """Calibrate per-exit thresholds for exactly one target; JSON-serialisable result

    {"kind", "thresholds", "tables", "float_thresholds", "target", "validation"}.
    """
    pol.check_policy(policy)
    given = [name for name, v in (("accuracy_delta", accuracy_delta), ("exit_fractions", exit_fractions),
                                  ("budget", budget)) if v is not None]
    if len(given) != 1:
        raise UserError(f"give exactly one calibration target (accuracy_delta, exit_fractions or budget); got "
                        f"{', '.join(given) or 'none'}")
    if accuracy_delta is not None:
        thr = calibrate_accuracy(policy, logits, labels, tables, accuracy_delta, costs)
        target = {"mode": "accuracy", "accuracy_delta": float(accuracy_delta)}
    elif exit_fractions is not None:
        thr = calibrate_exit_rates(policy, logits, labels, tables, exit_fractions)
        target = {"mode": "exit_rate", "exit_fractions": [float(x) for x in exit_fractions]}
    else:
        thr = calibrate_budget(policy, logits, labels, tables, budget, costs)
        target = {"mode": "budget", "budget": float(budget)}
    if costs is not None:
        target["costs"] = [float(c) for c in costs]
    return {
        "kind": policy,
        "thresholds": thr,
        "tables": tables,
        "float_thresholds": [pol.int_to_float_threshold(policy, t, tables, k) for k, t in enumerate(thr)],
        "target": target,
        "validation": evaluate(policy, logits, labels, tables, thr, costs),
    }


def _point(scores: pol.IntegerScores, labels: np.ndarray, tables: dict[str, Any],
           thresholds: Sequence[int], costs: Sequence[float] | None) -> dict[str, Any]:
    thresholds = pol.check_thresholds(scores.policy, tables, thresholds)
    ev = _summarise(pol.view_from_scores(scores, thresholds), labels, tables, costs)
    return {"thresholds": [int(t) for t in thresholds],
            "exit_fractions": [e["exit_fraction"] for e in ev["exits"]],
            "overall_accuracy": ev["overall_accuracy"], "mean_cost": ev["mean_cost"]}


def default_float_grid(policy: str, logits: Sequence[np.ndarray], tables: dict[str, Any],
                       points: int = 41) -> list[float]:
    """A float threshold grid spanning the policy's useful range."""
    grid = pol.get(policy).float_grid(logits, tables, points)
    return sorted({float(x) for x in grid})


def sweep(policy: str, logits: Sequence[np.ndarray], labels: np.ndarray, tables: dict[str, Any],
          float_thresholds: Sequence[float] | None = None,
          costs: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """One shared float threshold at every early exit, mapped to each exit's integer
    threshold; per point {"float_threshold", "thresholds", "exit_fractions",
    "overall_accuracy", "mean_cost"} (integer view)."""
    pol.check_policy(policy)
    grid = default_float_grid(policy, logits, tables) if float_thresholds is None else list(float_thresholds)
    scores = pol.exit_scores(policy, logits, tables)  # threshold-independent: compute once
    out = []
    for t in grid:
        thr = [pol.float_to_int_threshold(policy, t, tables, k) for k in range(tables["num_exits"] - 1)]
        out.append({"float_threshold": float(t), **_point(scores, labels, tables, thr, costs)})
    return out


def frontier(policy: str, logits: Sequence[np.ndarray], labels: np.ndarray, tables: dict[str, Any],
             costs: Sequence[float] | None = None, budgets: int = 12) -> list[dict[str, Any]]:
    """Non-dominated (mean cost, accuracy) points, by increasing mean cost: the
    Lagrangian optima plus the budget search at `budgets` evenly spaced budgets.
    Per point {"thresholds", "exit_fractions", "overall_accuracy", "mean_cost"}."""
    prob = _problem(policy, logits, labels, tables, costs)
    configs = _frontier_starts(prob)
    totals = [_totals(prob, a)[1] for a in configs]
    for limit in np.linspace(min(totals), max(totals), budgets)[1:-1]:
        configs.append(_search(prob, _budget_objective(float(limit)), configs[: len(MU_GRID) + 1]))
    points = [_point(prob.scores, labels, tables, _thresholds(prob, a), costs) for a in configs]
    points.sort(key=lambda p: (p["mean_cost"], -p["overall_accuracy"]))
    front, best_acc = [], -1.0
    for p in points:
        if p["overall_accuracy"] > best_acc:
            front.append(p)
            best_acc = p["overall_accuracy"]
    return front
