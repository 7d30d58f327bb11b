"""Exit policies: the integer view (what the hardware computes) and the float view.

The integer semantics are fixed by docs/policies.md; this module is their
reference implementation (numpy only). HLS and RTL generators emit the
`tables` and `thresholds` produced here unchanged, so every function below is
written to be bit-exact and vectorised over samples.

Shapes: `logits` is a list over exits (K of them, the final one last) of int64
arrays [N, C]; thresholds are one integer per early exit (K - 1 of them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from stage_ir.errors import UserError

POLICIES = ("margin", "max_softmax", "entropy", "patience")

# Defaults from docs/policies.md.
PROB_BITS = 8  # P: fraction bits of the exp table values
MAX_ENTRIES = 64  # upper bound on N, the exp table size
LOG_FRAC = 8  # G: fraction bits of the fixed-point log2
LOG_MANT = 5  # M: mantissa bits used to index the LOG table


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise UserError(f"unknown exit policy {policy!r}; use one of: {', '.join(POLICIES)}")
    return policy


def _round_half_up(x: float) -> int:
    # Python's round() is round-half-even; the doc fixes half-up so that any
    # re-implementation (C++, Tcl, Verilog generators) gets the same table.
    return int(math.floor(x + 0.5))


# --------------------------------------------------------------------------- tables


def _exp_value(d: int, frac: int, prob_bits: int) -> int:
    return _round_half_up(2.0**prob_bits * math.exp(-d * 2.0**-frac))


def _exp_cutoff(frac: int, prob_bits: int) -> int:
    """Largest logit difference d whose rounded exp value is still non-zero."""
    # 2**P * exp(-d * 2**-F) >= 1/2  <=>  d <= 2**F * (P + 1) * ln 2; the float
    # estimate is then corrected against the exact rounding rule.
    d = max(0, int(math.floor(2.0**frac * (prob_bits + 1) * math.log(2.0))))
    while d > 0 and _exp_value(d, frac, prob_bits) == 0:
        d -= 1
    while _exp_value(d + 1, frac, prob_bits) != 0:
        d += 1
    return d


def exp_table(frac: int, prob_bits: int = PROB_BITS, max_entries: int = MAX_ENTRIES) -> dict[str, Any]:
    """Exp look-up table {"p", "n", "s", "exp"} for logits with `frac` fraction bits."""
    if not (1 <= prob_bits <= 24 and 1 <= max_entries <= 4096):
        raise UserError(f"exp table needs prob_bits in [1, 24] and max_entries in [1, 4096] "
                        f"(got {prob_bits}, {max_entries})")
    d_max = _exp_cutoff(frac, prob_bits)
    shift = 0
    while (d_max >> shift) >= max_entries:  # smallest S that covers every non-zero d
        shift += 1
    n = (d_max >> shift) + 1
    values = [_exp_value(i << shift, frac, prob_bits) for i in range(n)]
    return {"p": prob_bits, "n": n, "s": shift, "exp": values}


def log_table(log_frac: int = LOG_FRAC, log_mant: int = LOG_MANT) -> dict[str, Any]:
    """LOG table {"g", "m", "log"}: LOG[m] = round(2**G * log2(1 + m / 2**M))."""
    if not (0 <= log_frac <= 24 and 0 <= log_mant <= 12):
        raise UserError(f"log table needs log_frac in [0, 24] and log_mant in [0, 12] (got {log_frac}, {log_mant})")
    values = [_round_half_up(2.0**log_frac * math.log2(1.0 + m / 2.0**log_mant)) for m in range(2**log_mant)]
    return {"g": log_frac, "m": log_mant, "log": values}


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
    check_policy(policy)
    if num_classes < 2:
        raise UserError(f"an exit needs at least 2 classes (got {num_classes})")
    if not 2 <= logit_bits <= 62:
        raise UserError(f"logit bits must be in [2, 62] (got {logit_bits})")
    table: dict[str, Any] = {"frac": int(logit_frac), "bits": int(logit_bits), "num_classes": int(num_classes)}
    if policy in ("max_softmax", "entropy"):
        table.update(exp_table(logit_frac, prob_bits, max_entries))
    if policy == "entropy":
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


# --------------------------------------------------------------------------- integer pieces


def top_two(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class, top1, top2) per row; class is the lowest index of the maximum."""
    cls = np.argmax(z, axis=1)  # numpy returns the first maximum: the doc's tie rule
    part = np.sort(z, axis=1)
    return cls, part[:, -1], part[:, -2]


def exp_lookup(d: np.ndarray, table: dict[str, Any]) -> np.ndarray:
    """e(d) = E[d >> S] if (d >> S) < N else 0, for d >= 0."""
    values = np.asarray(table["exp"], dtype=np.int64)
    idx = d >> table["s"]
    inside = idx < table["n"]
    return np.where(inside, values[np.where(inside, idx, 0)], 0)


def log2_fixed(x: np.ndarray, table: dict[str, Any]) -> np.ndarray:
    """L(x) = msb(x) * 2**G + LOG[m] for x >= 1 (m: the M bits after the leading one)."""
    x = np.asarray(x, dtype=np.int64)
    if np.any(x < 1):
        raise ValueError("log2_fixed is defined for x >= 1 only")
    # frexp is exact for integers below 2**53; x here is at most C * 2**P.
    p = np.frexp(x.astype(np.float64))[1].astype(np.int64) - 1
    mant = table["m"]
    down = np.maximum(p - mant, 0)
    up = np.maximum(mant - p, 0)
    m = ((x >> down) << up) & ((1 << mant) - 1)
    return p * (1 << table["g"]) + np.asarray(table["log"], dtype=np.int64)[m]


def softmax_sum(z: np.ndarray, table: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(e [N, C], sum_e [N]) with e_j = e(top1 - z_j)."""
    e = exp_lookup(z.max(axis=1, keepdims=True) - z, table)
    return e, e.sum(axis=1)


def entropy_lhs(e: np.ndarray, sum_e: np.ndarray, table: dict[str, Any]) -> np.ndarray:
    """lhs = sum_e * L(sum_e) - sum_j e_j * L(e_j) (terms with e_j = 0 are 0)."""
    log_e = np.where(e > 0, log2_fixed(np.maximum(e, 1), table), 0)
    return sum_e * log2_fixed(sum_e, table) - (e * log_e).sum(axis=1)


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
    sum_e = None
    if policy == "margin":
        score = np.stack([t[1] - t[2] for t in tops[:-1]])
    elif policy == "max_softmax":
        # zip stops at the K - 1 early exits: the final exit has no threshold unit
        score = np.stack([softmax_sum(z, tab)[1] for z, tab in zip(zs, tables["exits"])])
    elif policy == "entropy":
        parts = [softmax_sum(z, tab) for z, tab in zip(zs, tables["exits"])]
        score = np.stack([entropy_lhs(e, s, tab) for (e, s), tab in zip(parts, tables["exits"])])
        sum_e = np.stack([s for _, s in parts])
    else:
        score = np.empty((len(zs) - 1, n), dtype=np.int64)
        count = np.ones(n, dtype=np.int64)
        for k in range(len(zs) - 1):
            if k > 0:  # the (prev_class, count) state travels with the sample
                count = np.where(classes[k] == classes[k - 1], count + 1, 1)
            score[k] = count
    return IntegerScores(policy, classes, score.reshape(len(zs) - 1, n), sum_e)


def decide(scores: IntegerScores, k: int, threshold: int) -> np.ndarray:
    """Exit decision of early exit k for every sample (the doc's comparison, literally)."""
    s = scores.score[k]
    t = int(threshold)
    if scores.policy == "margin":
        return s >= t
    if scores.policy == "max_softmax":
        return s <= t
    if scores.policy == "entropy":
        return s <= t * scores.sum_e[k]
    return s >= t


def threshold_range(policy: str, tables: dict[str, Any], k: int) -> tuple[int, int]:
    """Inclusive integer range of exit k's threshold (see docs/policies.md)."""
    tab = _exit_table(policy, tables, k)
    if policy == "margin":
        return 0, 1 << tab["bits"]
    if policy == "max_softmax":
        return (1 << tab["p"]) - 1, tab["num_classes"] << tab["p"]
    if policy == "entropy":
        top = int(log2_fixed(np.array([tab["num_classes"] << tab["p"]]), tab)[0])
        return -1, top
    return 1, tables["num_exits"]


def never_threshold(policy: str, tables: dict[str, Any], k: int) -> int:
    """The threshold value with which exit k never lets a sample leave."""
    lo, hi = threshold_range(policy, tables, k)
    return hi if policy in ("margin", "patience") else lo


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
        if policy == "patience" and t > hi:
            raise UserError(f"patience n={t} at exit {k} is larger than the number of exits ({hi}); use n in [1, {hi}]")
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
    check_policy(policy)
    real = [np.asarray(x, dtype=np.float64) for x in real]
    if policy == "patience":
        classes = np.stack([np.argmax(x, axis=1) for x in real])
        counts = np.ones_like(classes[:-1])
        for k in range(1, len(real) - 1):
            counts[k] = np.where(classes[k] == classes[k - 1], counts[k - 1] + 1, 1)
        return counts
    out = []
    for x in real[:-1]:
        if policy == "margin":
            part = np.sort(x, axis=1)
            out.append(part[:, -1] - part[:, -2])
            continue
        shifted = np.exp(x - x.max(axis=1, keepdims=True))  # stable softmax
        prob = shifted / shifted.sum(axis=1, keepdims=True)
        if policy == "max_softmax":
            out.append(prob.max(axis=1))
        else:
            logp = np.log2(np.where(prob > 0, prob, 1.0))
            out.append(-(prob * logp).sum(axis=1))
    return np.stack(out)


def float_decisions(policy: str, real: Sequence[np.ndarray], float_thresholds: Sequence[float]) -> np.ndarray:
    """Float exit decisions [K-1, N]: p_max >= t, H <= h, margin >= m, count >= n."""
    s = float_scores(policy, real)
    t = np.asarray(float_thresholds, dtype=np.float64)[:, None]
    if len(float_thresholds) != s.shape[0]:
        raise UserError(f"got {len(float_thresholds)} thresholds for {s.shape[0]} early exits; give one per early exit")
    return s <= t if policy == "entropy" else s >= t


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
    if policy == "patience":
        if v != int(v) or v < 1:
            raise UserError(f"patience n={value!r} at exit {k} must be an integer >= 1")
        if v > hi:
            raise UserError(f"patience n={int(v)} at exit {k} is larger than the number of exits ({hi}); "
                            f"use n in [1, {hi}]")
        return int(v)
    if policy == "max_softmax":
        if v <= 0:
            raise UserError(f"max_softmax threshold t={v} at exit {k} must be > 0 (a probability in (0, 1])")
        # exact rational division: a float quotient can round up across an
        # integer and break "sum_e <= T  <=>  2**P / sum_e >= t"
        t = math.floor(Fraction(1 << tab["p"]) / Fraction(v))
    elif policy == "entropy":
        t = math.floor(v * 2.0 ** tab["g"])  # h < 0 clamps to -1: never, as H >= 0
    else:
        t = math.ceil(v * 2.0 ** tab["frac"])  # m < 0 clamps to 0: always, as margin >= 0
    return int(min(max(t, lo), hi))


def int_to_float_threshold(policy: str, threshold: int, tables: dict[str, Any], k: int) -> float:
    """Float threshold equivalent to integer threshold (inverse of float_to_int_threshold)."""
    tab = _exit_table(policy, tables, k)
    t = int(threshold)
    if policy == "max_softmax":
        v = 2.0 ** tab["p"] / t
        # the rounded quotient may sit just above 2**P / T; step down so that
        # float_to_int_threshold(v) gives T back
        return v if math.floor(Fraction(1 << tab["p"]) / Fraction(v)) == t else math.nextafter(v, 0.0)
    if policy == "entropy":
        return t * 2.0 ** -tab["g"]
    if policy == "margin":
        return t * 2.0 ** -tab["frac"]
    return float(t)


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
