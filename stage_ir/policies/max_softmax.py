"""max_softmax: exit when the softmax's maximum p_max >= t; in integers sum_j e(top1 - z_j) <= T
with T = floor(2**P / t) (docs/policies.md)."""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from stage_ir.errors import UserError
from stage_ir.kinds.rom import hex_lines
from stage_ir.policies.base import ExitPolicy
from stage_ir.policies.tables import MAX_ENTRIES, PROB_BITS, float_softmax, softmax_sum


class MaxSoftmax(ExitPolicy):
    name = "max_softmax"
    rtl_code = 1
    exits_on_low = True
    exp_table = True
    passes = 2
    pipe_stages = 2

    def scores(self, zs, tops, classes, tables):
        # zip stops at the K - 1 early exits: the final exit has no threshold unit
        return np.stack([softmax_sum(z, tab)[1] for z, tab in zip(zs, tables["exits"])]), None

    def threshold_range(self, tab: dict[str, Any], num_exits: int) -> tuple[int, int]:
        return (1 << tab["p"]) - 1, tab["num_classes"] << tab["p"]

    def float_score(self, x: np.ndarray) -> np.ndarray:
        return float_softmax(x).max(axis=1)

    def float_to_int_unclamped(self, v: float, tab: dict[str, Any], k: int) -> int:
        if v <= 0:
            raise UserError(f"max_softmax threshold t={v} at exit {k} must be > 0 (a probability in (0, 1])")
        # exact rational division: a float quotient can round up across an
        # integer and break "sum_e <= T  <=>  2**P / sum_e >= t"
        return math.floor(Fraction(1 << tab["p"]) / Fraction(v))

    def int_to_float(self, t: int, tab: dict[str, Any]) -> float:
        v = 2.0 ** tab["p"] / t
        # the rounded quotient may sit just above 2**P / T; step down so that
        # float_to_int_threshold(v) gives T back
        return v if math.floor(Fraction(1 << tab["p"]) / Fraction(v)) == t else math.nextafter(v, 0.0)

    def float_grid(self, logits: Sequence[np.ndarray], tables: dict[str, Any], points: int) -> np.ndarray:
        return np.linspace(1.0 / tables["num_classes"], 1.0, points)

    def rtl_params(self, tab: dict[str, Any], k: int) -> tuple[dict[str, Any], dict[str, str]]:
        params = {"P": tab["p"], "N": tab["n"], "S": tab["s"], "EXP_FILE": f"exit{k}_exp.hex"}
        return params, {f"exit{k}_exp.hex": hex_lines(tab["exp"], tab["p"] + 1)}

    def softmax_context(self, ex, tab, num_classes) -> None:
        ex.update(p=tab["p"], n=tab["n"], s=tab["s"], exp=[int(v) for v in tab["exp"]])
        ex["sum_bits"] = (num_classes << tab["p"]).bit_length()

    def hls_context(self, ex, tab, lo, hi, num_classes, count_bits) -> None:
        self.softmax_context(ex, tab, num_classes)
        ex.update(thr_type=f"ap_uint<{ex['sum_bits']}>", score_type=f"ap_uint<{ex['sum_bits']}>",
                  rule="exit when sum_j E[(top1 - z_j) >> S] <= threshold")

    @staticmethod
    def sum_bits(tab: dict[str, Any], num_classes: int) -> int:
        """Width of the sequential unit's sum of exp values (P + 1 bits each, C of them)."""
        return int(tab.get("p", PROB_BITS)) + 1 + int(np.ceil(np.log2(num_classes)))

    def sequential_extra(self, t, num_classes, logit_bits, tab, cmp_bits):
        p_bits = int(tab.get("p", PROB_BITS))
        n_exp = int(tab.get("n", MAX_ENTRIES))
        sum_bits = self.sum_bits(tab, num_classes)
        # second pass over the stored logits: subtract, shift, look up, accumulate
        lut = cmp_bits + np.ceil(n_exp * (p_bits + 1) / t["exp_table_bits_per_lut"]) + sum_bits
        ff = num_classes * logit_bits * t.get("ff_per_stored_logit_bit", 1.0) + sum_bits
        return [(lut, ff)], 0.0
