"""Integer exit policies against an independent, literal reading of docs/policies.md.

The reference below uses plain Python ints and per-sample loops on purpose: it
must not share code (or numpy tricks) with stage_ir/policies.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stage_ir import policies as pol
from stage_ir.errors import UserError

# --------------------------------------------------------------------------- reference (docs/policies.md)


def ref_round(x: float) -> int:
    return math.floor(x + 0.5)


def ref_exp_table(frac: int, p: int = 8, max_n: int = 64) -> tuple[int, int, list[int]]:
    def value(d: int) -> int:
        return ref_round(2**p * math.exp(-d * 2.0**-frac))

    lo, hi = 0, 1  # bisection for the last d with a non-zero rounded value
    while value(hi) >= 1:
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if value(mid) >= 1:
            lo = mid
        else:
            hi = mid
    d_max = lo
    s = 0
    while d_max // 2**s >= max_n:
        s += 1
    n = d_max // 2**s + 1
    return n, s, [value(i * 2**s) for i in range(n)]


def ref_log_table(g: int = 8, m: int = 5) -> list[int]:
    return [ref_round(2**g * math.log2(1 + i / 2**m)) for i in range(2**m)]


def ref_L(x: int, g: int, mbits: int, log: list[int]) -> int:
    bits = bin(x)[2:]
    p = len(bits) - 1
    after = (bits[1:] + "0" * mbits)[:mbits]  # the M bits after the leading one, zero-padded
    return p * 2**g + log[int(after, 2) if mbits else 0]


def ref_exit(policy: str, z: list[int], tab: dict, threshold: int) -> tuple[int, int, bool]:
    """(class, score, exits) of one sample at one exit, ignoring patience state."""
    cls, top1 = 0, z[0]
    for j in range(1, len(z)):  # comparator chain: replace only on strictly greater
        if z[j] > top1:
            cls, top1 = j, z[j]
    others = list(z)
    others.pop(cls)
    top2 = max(others)
    if policy == "margin":
        score = top1 - top2
        return cls, score, score >= threshold
    n, s, table = tab["n"], tab["s"], tab["exp"]
    es = []
    for v in z:
        d = top1 - v
        es.append(table[d >> s] if (d >> s) < n else 0)
    sum_e = sum(es)
    if policy == "max_softmax":
        return cls, sum_e, sum_e <= threshold
    g, mbits, log = tab["g"], tab["m"], tab["log"]
    lhs = sum_e * ref_L(sum_e, g, mbits, log)
    for e in es:
        if e:
            lhs -= e * ref_L(e, g, mbits, log)
    return cls, lhs, lhs <= threshold * sum_e


def ref_sample(policy: str, zs: list[list[int]], tables: dict, thresholds: list[int]) -> dict:
    classes, scores, decisions = [], [], []
    count, prev = 0, None
    for k, z in enumerate(zs):
        if k == len(zs) - 1:
            cls, _, _ = ref_exit("margin", z, {}, 0)
            classes.append(cls)
            break
        if policy == "patience":
            cls, _, _ = ref_exit("margin", z, {}, 0)
            count = count + 1 if (k > 0 and cls == prev) else 1
            prev = cls
            score, dec = count, count >= thresholds[k]
        else:
            cls, score, dec = ref_exit(policy, z, tables["exits"][k], thresholds[k])
        classes.append(cls)
        scores.append(score)
        decisions.append(dec)
    exit_index = next((k for k, d in enumerate(decisions) if d), len(zs) - 1)
    return {"classes": classes, "scores": scores, "decisions": decisions,
            "exit_index": exit_index, "exit_class": classes[exit_index]}


# --------------------------------------------------------------------------- strategies

EXTREMES = [-(2**20), 2**20 - 1, -(2**15), 2**15 - 1, 2**15, -(2**15) - 1, 0, 1, -1]


@st.composite
def logits_case(draw, policies=pol.POLICIES):
    policy = draw(st.sampled_from(policies))
    num_exits = draw(st.integers(2, 4))
    c = draw(st.integers(2, 6))
    n = draw(st.integers(1, 8))
    fracs = [draw(st.integers(-3, 22)) for _ in range(num_exits)]
    regime = draw(st.sampled_from(["ties", "wide", "extreme", "equal"]))
    zs = []
    for _ in range(num_exits):
        rows = []
        for _ in range(n):
            if regime == "ties":
                rows.append(draw(st.lists(st.integers(-3, 3), min_size=c, max_size=c)))
            elif regime == "wide":
                rows.append(draw(st.lists(st.integers(-(2**21), 2**21 - 1), min_size=c, max_size=c)))
            elif regime == "extreme":
                rows.append(draw(st.lists(st.sampled_from(EXTREMES), min_size=c, max_size=c)))
            else:
                rows.append([draw(st.integers(-(2**21), 2**21 - 1))] * c)
        zs.append(rows)
    tables = pol.make_tables(policy, fracs, c, logit_bits=23)
    thresholds = []
    for k in range(num_exits - 1):
        lo, hi = pol.threshold_range(policy, tables, k)
        thresholds.append(draw(st.one_of(st.sampled_from([lo, hi, lo + 1, hi - 1]), st.integers(lo, hi))))
    return policy, zs, tables, thresholds


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize("frac", [-6, -3, 0, 1, 2, 3, 4, 5, 6, 8, 12, 16, 20, 24])
@pytest.mark.parametrize("p", [4, 8, 10])
@pytest.mark.parametrize("max_n", [64, 40, 7])
def test_exp_table_matches_doc(frac: int, p: int, max_n: int) -> None:
    tab = pol.exp_table(frac, prob_bits=p, max_entries=max_n)
    assert (tab["n"], tab["s"], tab["exp"]) == ref_exp_table(frac, p, max_n)
    assert tab["exp"][0] == 2**p and tab["n"] <= max_n and min(tab["exp"]) >= 1


@pytest.mark.parametrize("g,m", [(8, 5), (4, 3), (10, 0), (6, 7)])
def test_log_table_matches_doc(g: int, m: int) -> None:
    assert pol.log_table(g, m)["log"] == ref_log_table(g, m)


@given(st.integers(1, 2**40), st.sampled_from([(8, 5), (4, 3), (10, 0), (6, 7)]))
@FAST
def test_log2_fixed_matches_doc(x: int, gm: tuple[int, int]) -> None:
    tab = pol.log_table(*gm)
    assert int(pol.log2_fixed(np.array([x]), tab)[0]) == ref_L(x, gm[0], gm[1], tab["log"])


def test_tables_are_json_and_per_exit() -> None:
    tables = pol.make_tables("entropy", [4, 6, 8], 10, logit_bits=[16, 18, 20])
    assert json.loads(json.dumps(tables)) == tables
    assert len(tables["exits"]) == 2
    assert [t["frac"] for t in tables["exits"]] == [4, 6]
    assert [t["bits"] for t in tables["exits"]] == [16, 18]


# --------------------------------------------------------------------------- integer view


@given(logits_case())
@FAST
def test_integer_view_matches_reference(case) -> None:
    policy, zs, tables, thresholds = case
    logits = [np.array(z, dtype=np.int64) for z in zs]
    view = pol.integer_view(policy, logits, tables, thresholds)
    for i in range(len(zs[0])):
        ref = ref_sample(policy, [z[i] for z in zs], tables, thresholds)
        assert view.scores.classes[:, i].tolist() == ref["classes"]
        assert view.scores.score[:, i].tolist() == ref["scores"]
        assert view.decisions[:, i].tolist() == ref["decisions"]
        assert int(view.exit_index[i]) == ref["exit_index"]
        assert int(view.exit_class[i]) == ref["exit_class"]


@pytest.mark.parametrize("policy", pol.POLICIES)
def test_never_and_always_ends(policy: str) -> None:
    rng = np.random.default_rng(0)
    logits = [rng.integers(-(2**15), 2**15, (200, 5)) for _ in range(3)]
    tables = pol.make_tables(policy, [8, 8, 8], 5, logit_bits=17)
    never = [pol.never_threshold(policy, tables, k) for k in range(2)]
    assert not pol.integer_view(policy, logits, tables, never).decisions.any()
    lo, hi = pol.threshold_range(policy, tables, 0)
    always = hi if policy in ("max_softmax", "entropy") else lo
    assert pol.integer_view(policy, logits, tables, [always, never[1]]).decisions[0].all()


# --------------------------------------------------------------------------- float view and mappings


@given(st.integers(2**8, 10 * 2**8), st.floats(1e-6, 2.0))
@FAST
def test_max_softmax_mapping_is_exact(sum_e: int, t: float) -> None:
    tables = pol.make_tables("max_softmax", [8, 8], 10)
    T = pol.float_to_int_threshold("max_softmax", t, tables, 0)
    assert (sum_e <= T) == (Fraction(2**8, sum_e) >= Fraction(t))


@pytest.mark.parametrize("policy", pol.POLICIES)
def test_float_int_round_trip(policy: str) -> None:
    tables = pol.make_tables(policy, [5, 7, 3], 10, logit_bits=12)
    for k in range(2):
        lo, hi = pol.threshold_range(policy, tables, k)
        for t in range(lo, hi + 1):
            f = pol.int_to_float_threshold(policy, t, tables, k)
            assert pol.float_to_int_threshold(policy, f, tables, k) == t


@given(logits_case(("margin", "patience")))  # every example tests one of the two (no early return)
@FAST
def test_margin_and_patience_agree_exactly(case) -> None:
    policy, zs, tables, thresholds = case
    logits = [np.array(z, dtype=np.int64) for z in zs]
    floats = [pol.int_to_float_threshold(policy, t, tables, k) for k, t in enumerate(thresholds)]
    agree = pol.agreement(policy, logits, tables, floats)
    assert agree["thresholds"] == thresholds
    assert agree["exits"] == [1.0] * len(thresholds) and agree["exit_index"] == 1.0


def test_softmax_and_entropy_agree_mostly() -> None:
    rng = np.random.default_rng(3)
    logits = [np.round(rng.normal(0, 3, (2000, 10)) * 2**6).astype(np.int64) for _ in range(2)]
    for policy, t in (("max_softmax", 0.6), ("entropy", 1.5)):
        tables = pol.make_tables(policy, [6, 6], 10, logit_bits=16)
        agree = pol.agreement(policy, logits, tables, [t])
        assert agree["exits"][0] > 0.97, (policy, agree)


def test_float_scores_ranges() -> None:
    rng = np.random.default_rng(4)
    real = [rng.normal(0, 2, (100, 4)) for _ in range(3)]
    pmax = pol.float_scores("max_softmax", real)
    ent = pol.float_scores("entropy", real)
    assert pmax.shape == (2, 100) and np.all((pmax >= 0.25) & (pmax <= 1))
    assert np.all((ent >= -1e-12) & (ent <= 2 + 1e-12))
    assert np.all(pol.float_scores("margin", real) >= 0)
    assert set(np.unique(pol.float_scores("patience", real))) <= {1, 2}


# --------------------------------------------------------------------------- errors


def _tables(policy: str = "margin", exits: int = 3) -> dict:
    return pol.make_tables(policy, [6] * exits, 4, logit_bits=12)


def test_unknown_policy_lists_known_ones() -> None:
    with pytest.raises(UserError, match="unknown exit policy 'softmax'.*margin, max_softmax, entropy, patience"):
        pol.make_tables("softmax", [6, 6], 4)


@pytest.mark.parametrize("policy,bad", [("margin", -1), ("margin", 2**12 + 1), ("max_softmax", 2**8 - 2),
                                        ("max_softmax", 4 * 2**8 + 1), ("entropy", -2), ("patience", 0)])
def test_threshold_outside_range(policy: str, bad: int) -> None:
    logits = [np.zeros((2, 4), dtype=np.int64)] * 3
    with pytest.raises(UserError, match=r"outside \[.*\]; pick one"):
        pol.integer_view(policy, logits, _tables(policy), [bad, pol.never_threshold(policy, _tables(policy), 1)])


def test_patience_larger_than_exits() -> None:
    logits = [np.zeros((2, 4), dtype=np.int64)] * 3
    with pytest.raises(UserError, match="larger than the number of exits"):
        pol.integer_view("patience", logits, _tables("patience"), [4, 1])
    with pytest.raises(UserError, match="larger than the number of exits"):
        pol.float_to_int_threshold("patience", 5, _tables("patience"), 0)


def test_input_errors() -> None:
    tables = _tables()
    with pytest.raises(UserError, match="one per early exit"):
        pol.integer_view("margin", [np.zeros((2, 4), dtype=np.int64)] * 3, tables, [0])
    with pytest.raises(UserError, match="do not fit in 12 signed bits"):
        pol.integer_view("margin", [np.full((2, 4), 2**11, dtype=np.int64)] * 3, tables, [0, 0])
    with pytest.raises(UserError, match="integer logits"):
        pol.integer_view("margin", [np.zeros((2, 4))] * 3, tables, [0, 0])
    with pytest.raises(UserError, match="at least 2 classes"):
        pol.make_tables("margin", [6, 6], 1)
    with pytest.raises(UserError, match="tables were made for policy 'margin', not 'entropy'"):
        pol.integer_view("entropy", [np.zeros((2, 4), dtype=np.int64)] * 3, tables, [0, 0])
    with pytest.raises(UserError, match="not an early exit"):
        pol.float_to_int_threshold("margin", 1.0, tables, 2)
    with pytest.raises(UserError, match="must be > 0"):
        pol.float_to_int_threshold("max_softmax", 0.0, _tables("max_softmax"), 0)


@pytest.mark.parametrize("policy", pol.POLICIES)
def test_integer_view_bulk(policy: str) -> None:
    """Many realistic samples (quantised Gaussians, frequent near-ties) against the reference."""
    rng = np.random.default_rng(42)
    logits = [np.round(rng.normal(0, 4, (300, 10)) * 2**k).astype(np.int64) for k in (2, 5, 7)]
    tables = pol.make_tables(policy, [2, 5, 7], 10, logit_bits=16)
    ranges = [pol.threshold_range(policy, tables, k) for k in range(2)]
    for thresholds in ([min(lo + 3, hi) for lo, hi in ranges], [(lo + hi) // 2 for lo, hi in ranges]):
        view = pol.integer_view(policy, logits, tables, thresholds)
        for i in range(300):
            ref = ref_sample(policy, [z[i].tolist() for z in logits], tables, thresholds)
            assert view.decisions[:, i].tolist() == ref["decisions"]
            assert view.scores.score[:, i].tolist() == ref["scores"]
            assert int(view.exit_index[i]) == ref["exit_index"]
