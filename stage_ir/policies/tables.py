"""The look-up tables of the softmax-based policies (docs/policies.md): exp and log2 in integers,
the same table in the reference, the HLS threshold unit and the RTL one."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from stage_ir.errors import UserError

# Defaults from docs/policies.md.
PROB_BITS = 8  # P: fraction bits of the exp table values
MAX_ENTRIES = 64  # upper bound on N, the exp table size
LOG_FRAC = 8  # G: fraction bits of the fixed-point log2
LOG_MANT = 5  # M: mantissa bits used to index the LOG table


def round_half_up(x: float) -> int:
    # Python's round() is round-half-even; the doc fixes half-up so that any
    # re-implementation (C++, Tcl, Verilog generators) gets the same table.
    return int(math.floor(x + 0.5))


def _exp_value(d: int, frac: int, prob_bits: int) -> int:
    return round_half_up(2.0**prob_bits * math.exp(-d * 2.0**-frac))


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
    values = [round_half_up(2.0**log_frac * math.log2(1.0 + m / 2.0**log_mant)) for m in range(2**log_mant)]
    return {"g": log_frac, "m": log_mant, "log": values}


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


def float_softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=1, keepdims=True))  # stable softmax
    return shifted / shifted.sum(axis=1, keepdims=True)
