"""Exit policies: the integer view (what the hardware computes) and the float view.

The integer semantics are fixed by docs/policies.md; each policy's module (stage_ir.policies) holds
its own rules, and these generic views walk the exits through them, bit-exact and vectorised over
samples. HLS and RTL generators emit the `tables` and `thresholds` produced here unchanged.

Shapes: `logits` is a list over exits (K of them, the final one last) of int64
arrays [N, C]; thresholds are one integer per early exit (K - 1 of them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from stage_ir.errors import UserError
from stage_ir.policies.registry import get
from stage_ir.policies.tables import (LOG_FRAC, LOG_MANT, MAX_ENTRIES, PROB_BITS, exp_table, log_table,
                                      top_two)


def check_policy(policy: str) -> str:
    get(policy)
    return policy


# --------------------------------------------------------------------------- tables


def make_exit_table(
    policy: str,
    logit_frac: int,
    num_classes: int,
    logit_bits: int = 32,
    prob_bits: int = PROB_BITS,
    max_entries: int = MAX_ENTRIES,
    log_frac: int = LOG_FRAC,
    log_mant: int = LOG_MANT,
) -> dict[str, Any]:
    """Synthesis-time constants of one early exit's threshold unit (plain ints/lists)."""
    p = get(policy)
    if num_classes < 2:
        raise UserError(f"an exit needs at least 2 classes (got {num_classes})")
    if not 2 <= logit_bits <= 62:
        raise UserError(f"logit bits must be in [2, 62] (got {logit_bits})")
    table: dict[str, Any] = {"frac": int(logit_frac), "bits": int(logit_bits), "num_classes": int(num_classes)}
    if p.exp_table:
        table.update(exp_table(logit_frac, prob_bits, max_entries))
    if p.log_table:
        table.update(log_table(log_frac, log_mant))
    return table


def make_tables(
    policy: str,
    logit_frac: Sequence[int],
    num_classes: int,
    logit_bits: int | Sequence[int] = 32,
    **table_options: int,
) -> dict[str, Any]:
    """Tables of a K-exit network: {"policy", "num_exits", "num_classes",
    "logit_frac", "logit_bits", "exits": [one make_exit_table per early exit]}.

    `logit_frac` (and `logit_bits` if a list) has one entry per exit, the final
    one included (it is kept for the float view; the final exit has no
    threshold unit, so `exits` has K - 1 entries). `table_options` are the
    keyword arguments of `make_exit_table` (prob_bits, max_entries, log_frac,
    log_mant).
    """
    check_policy(policy)
    fracs = [int(f) for f in logit_frac]
    num_exits = len(fracs)
    if num_exits < 2:
        raise UserError(f"an early-exit network needs at least 2 exits (got {num_exits})")
    bits = [int(logit_bits)] * num_exits if isinstance(logit_bits, (int, np.integer)) else [int(b) for b in logit_bits]
    if len(bits) != num_exits:
        raise UserError(f"logit_bits has {len(bits)} entries but there are {num_exits} exits; give one per exit")
    exits = [make_exit_table(policy, fracs[k], num_classes, bits[k], **table_options) for k in range(num_exits - 1)]
    return {
        "policy": policy,
        "num_exits": num_exits,
        "num_classes": int(num_classes),
        "logit_frac": fracs,
        "logit_bits": bits,
        "exits": exits,
    }


# --------------------------------------------------------------------------- integer view


@dataclass
class IntegerScores:
    """Threshold-independent part of the integer view.

    classes [K, N]; score [K-1, N] (margin: top1 - top2, max_softmax: sum_e,
    entropy: lhs, patience: count); sum_e [K-1, N] for entropy (else None).
    """

    policy: str
    classes: np.ndarray
    score: np.ndarray
    sum_e: np.ndarray | None


@dataclass
class IntegerView:
    """Full integer outcome: per-exit decisions plus where each sample leaves."""

    scores: IntegerScores
    decisions: np.ndarray  # [K-1, N] bool
    exit_index: np.ndarray  # [N]
    exit_class: np.ndarray  # [N]


def _check_tables(policy: str, tables: dict[str, Any]) -> None:
    check_policy(policy)
    if tables.get("policy") != policy:
        raise UserError(f"the tables were made for policy {tables.get('policy')!r}, not {policy!r}; "
                        f"build them with make_tables({policy!r}, ...)")


def _exit_table(policy: str, tables: dict[str, Any], k: int) -> dict[str, Any]:
    _check_tables(policy, tables)
    if not 0 <= k < len(tables["exits"]):
        raise UserError(f"exit {k} is not an early exit; early exits are 0..{len(tables['exits']) - 1}")
    return tables["exits"][k]


def _as_logits(policy: str, logits: Sequence[np.ndarray], tables: dict[str, Any]) -> list[np.ndarray]:
    _check_tables(policy, tables)
    if len(logits) != tables["num_exits"]:
        raise UserError(f"got logits of {len(logits)} exits but the tables are for {tables['num_exits']}; "
                        "pass the logits of every exit, the final one last")
    out = []
    for k, z in enumerate(logits):
        z = np.asarray(z)
        if z.ndim != 2 or z.shape[1] != tables["num_classes"] or z.shape[0] != np.asarray(logits[0]).shape[0]:
            raise UserError(f"logits of exit {k} have shape {z.shape}; expected "
                            f"[N, {tables['num_classes']}] with the same N at every exit")
        if not np.issubdtype(z.dtype, np.integer):
            raise UserError(f"logits of exit {k} are {z.dtype}; the integer view needs integer logits")
        z = z.astype(np.int64)
        half = 1 << (tables["logit_bits"][k] - 1)
        if z.size and (z.min() < -half or z.max() >= half):
            raise UserError(f"logits of exit {k} do not fit in {tables['logit_bits'][k]} signed bits; "
                            "pass the exit's logits.bits as logit_bits")
        out.append(z)
    return out


def exit_scores(policy: str, logits: Sequence[np.ndarray], tables: dict[str, Any]) -> IntegerScores:
    """Classes of every exit and integer scores of every early exit."""
    zs = _as_logits(policy, logits, tables)
    tops = [top_two(z) for z in zs]
    classes = np.stack([t[0] for t in tops])
    n = zs[0].shape[0]
    score, sum_e = get(policy).scores(zs, tops, classes, tables)
    return IntegerScores(policy, classes, score.reshape(len(zs) - 1, n), sum_e)


def decide(scores: IntegerScores, k: int, threshold: int) -> np.ndarray:
    """Exit decision of early exit k for every sample (the doc's comparison, literally)."""
    return get(scores.policy).decide(scores.score[k], int(threshold), None if scores.sum_e is None else scores.sum_e[k])


def threshold_range(policy: str, tables: dict[str, Any], k: int) -> tuple[int, int]:
    """Inclusive integer range of exit k's threshold (see docs/policies.md)."""
    return get(policy).threshold_range(_exit_table(policy, tables, k), tables["num_exits"])


def never_threshold(policy: str, tables: dict[str, Any], k: int) -> int:
    """The threshold value with which exit k never lets a sample leave."""
    return get(policy).never_threshold(*threshold_range(policy, tables, k))


def check_thresholds(policy: str, tables: dict[str, Any], thresholds: Sequence[int]) -> list[int]:
    """The thresholds as ints, or a UserError naming the first bad one and its range."""
    _check_tables(policy, tables)
    early = tables["num_exits"] - 1
    if len(thresholds) != early:
        raise UserError(f"got {len(thresholds)} thresholds for {early} early exits; give one per early exit")
    out = []
    for k, t in enumerate(thresholds):
        if int(t) != t:
            raise UserError(f"{policy} threshold {t!r} at exit {k} is not an integer; integer thresholds only")
        lo, hi = threshold_range(policy, tables, k)
        own = get(policy).out_of_range(t, k, lo, hi)
        if own:
            raise UserError(own)
        if not lo <= t <= hi:
            raise UserError(f"{policy} threshold {t} at exit {k} is outside [{lo}, {hi}]; pick one in that range")
        out.append(int(t))
    return out


def check_stored(policy: str, tables: Any, thresholds: Any, where: str, fix: str) -> list[int]:
    """check_thresholds for a policy read from a file: any problem (malformed tables included) is one
    UserError line `where: problem; fix`."""
    try:
        return check_thresholds(policy, tables, thresholds)
    except UserError as err:
        raise UserError(f"{where}: {err}; {fix}") from None
    except (KeyError, TypeError, IndexError, ValueError, AttributeError):
        raise UserError(f"{where}: the {policy} tables or thresholds are malformed; {fix}") from None


def outcome(scores: IntegerScores, decisions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(exit_index, exit_class): the first exit that decides to exit, else the final one."""
    num_exits, n = scores.classes.shape
    exit_index = np.full(n, num_exits - 1, dtype=np.int64)
    for k in reversed(range(num_exits - 1)):
        exit_index = np.where(decisions[k], k, exit_index)
    return exit_index, scores.classes[exit_index, np.arange(n)]


def integer_view(
    policy: str, logits: Sequence[np.ndarray], tables: dict[str, Any], thresholds: Sequence[int]
) -> IntegerView:
    """Per exit class / score / decision and per sample exit index and class."""
    thr = check_thresholds(policy, tables, thresholds)
    scores = exit_scores(policy, logits, tables)
    return view_from_scores(scores, thr)


def view_from_scores(scores: IntegerScores, thresholds: Sequence[int]) -> IntegerView:
    n = scores.classes.shape[1]
    decisions = np.zeros((len(thresholds), n), dtype=bool)
    for k, t in enumerate(thresholds):
        decisions[k] = decide(scores, k, t)
    exit_index, exit_class = outcome(scores, decisions)
    return IntegerView(scores, decisions, exit_index, exit_class)


# --------------------------------------------------------------------------- float view


def real_logits(logits: Sequence[np.ndarray], tables: dict[str, Any]) -> list[np.ndarray]:
    """Real values z * 2**-F of integer logits, exit by exit."""
    return [np.asarray(z, dtype=np.float64) * 2.0 ** -f for z, f in zip(logits, tables["logit_frac"])]


def float_scores(policy: str, real: Sequence[np.ndarray]) -> np.ndarray:
    """Float score of every early exit [K-1, N]: max softmax probability,
    entropy in bits, margin in real units, or patience count."""
    return get(policy).float_scores([np.asarray(x, dtype=np.float64) for x in real])


def float_decisions(policy: str, real: Sequence[np.ndarray], float_thresholds: Sequence[float]) -> np.ndarray:
    """Float exit decisions [K-1, N]: p_max >= t, H <= h, margin >= m, count >= n."""
    s = float_scores(policy, real)
    t = np.asarray(float_thresholds, dtype=np.float64)[:, None]
    if len(float_thresholds) != s.shape[0]:
        raise UserError(f"got {len(float_thresholds)} thresholds for {s.shape[0]} early exits; give one per early exit")
    return s <= t if get(policy).float_exits_on_low else s >= t


def float_to_int_threshold(policy: str, value: float, tables: dict[str, Any], k: int) -> int:
    """Integer threshold of exit k matching float threshold `value`.

    max_softmax: T = floor(2**P / t) (t > 0); entropy: Th = floor(h * 2**G);
    margin: tau = ceil(m * 2**F); patience: n itself (an integer in [1, K]).
    Results are clamped to the integer range, which changes no decision:
    beyond the range every sample already exits (or none does).
    """
    tab = _exit_table(policy, tables, k)
    lo, hi = threshold_range(policy, tables, k)
    v = float(value)
    if not math.isfinite(v):
        raise UserError(f"{policy} float threshold {value!r} at exit {k} is not finite; give a finite number")
    return get(policy).float_to_int(value, tab, k, lo, hi)


def int_to_float_threshold(policy: str, threshold: int, tables: dict[str, Any], k: int) -> float:
    """Float threshold equivalent to integer threshold (inverse of float_to_int_threshold)."""
    return get(policy).int_to_float(int(threshold), _exit_table(policy, tables, k))


def agreement(
    policy: str, logits: Sequence[np.ndarray], tables: dict[str, Any], float_thresholds: Sequence[float]
) -> dict[str, Any]:
    """How often float and integer decisions agree at matched thresholds.

    Returns {"exits": [fraction per early exit], "exit_index": fraction of
    samples leaving at the same exit, "thresholds": the matched integers}.
    """
    thr = [float_to_int_threshold(policy, t, tables, k) for k, t in enumerate(float_thresholds)]
    view = integer_view(policy, logits, tables, thr)
    fdec = float_decisions(policy, real_logits(logits, tables), float_thresholds)
    scores = view.scores
    f_index, _ = outcome(scores, fdec)
    return {
        "exits": [float(np.mean(fdec[k] == view.decisions[k])) for k in range(len(thr))],
        "exit_index": float(np.mean(f_index == view.exit_index)),
        "thresholds": thr,
    }
