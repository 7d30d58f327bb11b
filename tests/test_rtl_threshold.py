"""cs_threshold_unit (sequential) and cs_threshold_pipe (pipelined, II = 1)
against stage_ir.policies (docs/policies.md) bit for bit: decisions, class
(lowest index on ties), patience state; random logits with ties, all-equal
rows and extreme values; several thresholds around the observed scores,
including each policy's "never" value.  The first run of every case has a
ready consumer and checks the cycles per sample (C+1 / 2C+1, or 1)."""
from __future__ import annotations

import numpy as np
import pytest

from stage_ir import policies
from sim import run_stream
from sim.rtl import axis_ports, build_module, pack
from stage_ir.kinds.rom import hex_lines

C, LB, FRAC, CNT_BITS, TB = 10, 16, 4, 4, 32
CLS_BITS = int(np.ceil(np.log2(C)))
POLICY_CODE = {"margin": 0, "max_softmax": 1, "entropy": 2, "patience": 3}
UNITS = ["cs_threshold_unit", "cs_threshold_pipe"]


def logits(rng: np.random.Generator) -> np.ndarray:
    lo, hi = -(2 ** (LB - 1)), 2 ** (LB - 1) - 1
    rows = [
        rng.integers(-6, 7, (300, C)),  # narrow range: many ties
        rng.integers(-200, 200, (300, C)),  # inside and around the exp table's reach
        rng.integers(lo, hi + 1, (100, C)),  # full range: d far beyond the table
        np.repeat(rng.integers(lo, hi + 1, (20, 1)), C, axis=1),  # all equal
        np.full((1, C), lo), np.full((1, C), hi),
        rng.choice([lo, hi], (40, C)),  # only the extremes
    ]
    z = np.concatenate(rows)
    z[-5:, 3] = hi  # tied maxima at the top value
    z[-5:, 7] = hi
    return z.astype(np.int64)


def cycles_per_sample(module: str, policy: str) -> int:
    if module == "cs_threshold_pipe":
        return 1
    return C + 1 if policy in ("margin", "patience") else 2 * C + 1


def unit_params(policy: str, **extra) -> tuple[dict, dict[str, str]]:
    """Parameters and table files of a threshold unit (either form) for `policy`."""
    table = policies.make_exit_table(policy, FRAC, C, LB)
    params = dict(C=C, LB=LB, POLICY=POLICY_CODE[policy], TB=TB, CNT_BITS=CNT_BITS, **extra)
    files = {}
    if "exp" in table:
        params.update(P=table["p"], N=table["n"], S=table["s"])
        files["exp.hex"] = hex_lines(table["exp"], table["p"] + 1)
    if "log" in table:
        params.update(M=table["m"], G=table["g"])
        files["log.hex"] = hex_lines(table["log"], table["g"] + 1)
    return params, files


def run_unit(policy: str, z: np.ndarray, thresholds: list[int], state: np.ndarray | None = None,
             first_exit: int = 0, module: str = "cs_threshold_unit") -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    params, files = unit_params(policy, FIRST_EXIT=first_exit, EXP_FILE="exp.hex", LOG_FILE="log.hex")
    state_bits = CNT_BITS + CLS_BITS if policy == "patience" else 0
    exe = build_module(module, axis_ports(C * LB + state_bits, CNT_BITS + CLS_BITS + 1, ["threshold"]),
                       params)
    words = [pack(row, LB) | (0 if state is None else int(st) << (C * LB))
             for row, st in zip(z, state if state is not None else [0] * len(z))]
    out = []
    for i, th in enumerate(thresholds):
        r = run_stream(exe, [words], expected=[len(words)], statics={"threshold": th & (2**TB - 1)},
                       files=files, p_valid=1.0 if i == 0 else 0.7, p_ready=1.0 if i == 0 else 0.3, seed=i)
        got = np.array(r.outputs[0], dtype=np.int64)
        out.append((got & 1, (got >> 1) & (2**CLS_BITS - 1), got >> (1 + CLS_BITS)))
        if i == 0:  # sequential: C+1 cycles (margin, patience), 2C+1 (max_softmax, entropy); pipe: 1
            assert set(np.diff(r.out_cycles[0]).tolist()) == {cycles_per_sample(module, policy)}
    return out


def thresholds_around(scores: np.ndarray, extra: list[int]) -> list[int]:
    qs = np.quantile(scores, [0.0, 0.3, 0.5, 0.8, 1.0]).astype(np.int64).tolist()
    return sorted(set(qs + extra))


@pytest.mark.parametrize("module", UNITS)
@pytest.mark.parametrize("policy", ["margin", "max_softmax", "entropy"])
def test_threshold_unit_matches_reference(policy: str, module: str) -> None:
    rng = np.random.default_rng(POLICY_CODE[policy])
    z = logits(rng)
    table = policies.make_exit_table(policy, FRAC, C, LB)
    cls, top1, top2 = policies.top_two(z)
    if policy == "margin":
        score = top1 - top2
        ths = thresholds_around(score, [0, 1, 2**LB])
        decide = lambda t: score >= t  # noqa: E731
    elif policy == "max_softmax":
        _, score = policies.softmax_sum(z, table)
        p = table["p"]
        ths = thresholds_around(score, [2**p - 1, 2**p, C * 2**p])
        decide = lambda t: score <= t  # noqa: E731
    else:
        e, sum_e = policies.softmax_sum(z, table)
        lhs = policies.entropy_lhs(e, sum_e, table)
        ths = thresholds_around(lhs // sum_e, [-1, 0, int(policies.threshold_range(
            "entropy", policies.make_tables("entropy", [FRAC, FRAC], C, LB), 0)[1])])
        decide = lambda t: lhs <= t * sum_e  # noqa: E731
    results = run_unit(policy, z, ths, module=module)
    for th, (exit_bit, got_cls, count) in zip(ths, results):
        np.testing.assert_array_equal(got_cls, cls)
        np.testing.assert_array_equal(exit_bit.astype(bool), decide(th), err_msg=f"threshold {th}")
        assert not count.any()


@pytest.mark.parametrize("module", UNITS)
@pytest.mark.parametrize("first_exit", [0, 1])
def test_patience_state_travels(first_exit: int, module: str) -> None:
    rng = np.random.default_rng(42)
    z = logits(rng)
    n = len(z)
    cls = policies.top_two(z)[0]
    prev_cls = np.where(rng.random(n) < 0.5, cls, rng.integers(0, C, n))  # agree about half the time
    prev_cnt = rng.integers(1, 2**CNT_BITS - 1, n)
    state = (prev_cnt << CLS_BITS) | prev_cls
    count = np.ones(n, dtype=np.int64) if first_exit else np.where(cls == prev_cls, prev_cnt + 1, 1)
    ths = [1, 2, 3, 5]
    for th, (exit_bit, got_cls, got_count) in zip(ths, run_unit("patience", z, ths, state, first_exit, module)):
        np.testing.assert_array_equal(got_cls, cls)
        np.testing.assert_array_equal(got_count, count)
        np.testing.assert_array_equal(exit_bit.astype(bool), count >= th)


@pytest.mark.parametrize("policy", list(POLICY_CODE))
def test_pipe_takes_a_sample_per_cycle(policy: str) -> None:
    """II = 1 with a ready consumer: n samples in n + latency cycles, the latency
    hw_models.rtl_cost.threshold_pipe_latency says; a stalled consumer loses nothing."""
    from hw_models.rtl_cost import threshold_pipe_latency

    rng = np.random.default_rng(7)
    z = rng.integers(-300, 300, (500, C)).astype(np.int64)
    params, files = unit_params(policy)
    state_bits = CNT_BITS + CLS_BITS if policy == "patience" else 0
    exe = build_module("cs_threshold_pipe", axis_ports(C * LB + state_bits, CNT_BITS + CLS_BITS + 1,
                                                       ["threshold"]), params)
    words = [pack(row, LB) for row in z]
    r = run_stream(exe, [words], expected=[len(words)], statics={"threshold": 1}, files=files)
    ins, outs = np.array(r.in_cycles[0]), np.array(r.out_cycles[0])
    samples_per_cycle = len(words) / (ins[-1] - ins[0] + 1)
    assert samples_per_cycle == 1.0
    assert set((outs - ins).tolist()) == {threshold_pipe_latency(policy, C)}
    cls = policies.top_two(z)[0]
    stalled = run_stream(exe, [words], expected=[len(words)], statics={"threshold": 1}, files=files,
                         p_valid=0.9, p_ready=0.2, seed=3)
    got = np.array(stalled.outputs[0], dtype=np.int64)
    np.testing.assert_array_equal((got >> 1) & (2**CLS_BITS - 1), cls)
