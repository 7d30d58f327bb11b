"""entropy: exit when the softmax's entropy H <= h bits; in integers
sum_e * L(sum_e) - sum_j e_j * L(e_j) <= Th * sum_e with Th = floor(h * 2**G) (docs/policies.md)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from stage_ir.kinds.rom import hex_lines
from stage_ir.policies.max_softmax import MaxSoftmax
from stage_ir.policies.tables import LOG_FRAC, LOG_MANT, entropy_lhs, float_softmax, log2_fixed, softmax_sum


class Entropy(MaxSoftmax):
    name = "entropy"
    rtl_code = 2
    exits_on_low = True
    float_exits_on_low = True
    log_table = True
    pipe_stages = 4

    def scores(self, zs, tops, classes, tables):
        parts = [softmax_sum(z, tab) for z, tab in zip(zs, tables["exits"])]
        score = np.stack([entropy_lhs(e, s, tab) for (e, s), tab in zip(parts, tables["exits"])])
        return score, np.stack([s for _, s in parts])

    def decide(self, score: np.ndarray, threshold: int, sum_e: np.ndarray | None) -> np.ndarray:
        return score <= threshold * sum_e

    def threshold_range(self, tab: dict[str, Any], num_exits: int) -> tuple[int, int]:
        top = int(log2_fixed(np.array([tab["num_classes"] << tab["p"]]), tab)[0])
        return -1, top

    def float_score(self, x: np.ndarray) -> np.ndarray:
        prob = float_softmax(x)
        logp = np.log2(np.where(prob > 0, prob, 1.0))
        return -(prob * logp).sum(axis=1)

    def float_to_int_unclamped(self, v: float, tab: dict[str, Any], k: int) -> int:
        return math.floor(v * 2.0 ** tab["g"])  # h < 0 clamps to -1: never, as H >= 0

    def int_to_float(self, t: int, tab: dict[str, Any]) -> float:
        return t * 2.0 ** -tab["g"]

    def sample_levels(self, score: np.ndarray, sum_e: np.ndarray | None) -> np.ndarray:
        # lhs <= Th * sum_e  <=>  Th >= ceil(lhs / sum_e)  (sum_e >= 2**P > 0)
        return -((-score) // sum_e)

    def float_grid(self, logits: Sequence[np.ndarray], tables: dict[str, Any], points: int) -> np.ndarray:
        return np.linspace(0.0, np.log2(tables["num_classes"]), points)

    def rtl_params(self, tab: dict[str, Any], k: int) -> tuple[dict[str, Any], dict[str, str]]:
        params, files = super().rtl_params(tab, k)
        params.update(M=tab["m"], G=tab["g"], LOG_FILE=f"exit{k}_log.hex")
        files[f"exit{k}_log.hex"] = hex_lines(tab["log"], tab["g"] + 1)
        return params, files

    def hls_context(self, ex, tab, lo, hi, num_classes, count_bits) -> None:
        self.softmax_context(ex, tab, num_classes)
        l_bits = max(hi, 1).bit_length()  # hi = L(C * 2**P), the largest L value
        lhs_bits = ex["sum_bits"] + l_bits
        ex.update(g=tab["g"], m=tab["m"], log=[int(v) for v in tab["log"]], l_bits=l_bits, lhs_bits=lhs_bits,
                  prod_bits=l_bits + ex["sum_bits"] + 2, thr_type=f"ap_int<{l_bits + 1}>",
                  score_type=f"ap_int<{lhs_bits + 1}>", rule="exit when lhs <= threshold * sum_e")

    def sequential_extra(self, t, num_classes, logit_bits, tab, cmp_bits):
        steps, _ = super().sequential_extra(t, num_classes, logit_bits, tab, cmp_bits)
        sum_bits = self.sum_bits(tab, num_classes)
        g_bits = int(tab.get("g", LOG_FRAC))
        m_bits = int(tab.get("m", LOG_MANT))
        lut = np.ceil((2 ** m_bits) * g_bits / t["exp_table_bits_per_lut"]) + 2 * sum_bits
        ff = 2 * (sum_bits + g_bits + 6)
        return steps + [(lut, ff)], 3.0  # e_j * L(e_j), sum_e * L(sum_e), Th * sum_e

    def pipe_dsp(self, num_classes: int) -> float:
        return num_classes + 2.0  # e_j L(e_j) per lane, sum_e L(sum_e), Th sum_e
