"""margin: exit when top1 - top2 >= threshold (logit units). The final exit's unit is a margin
unit at threshold 0, the argmax (ARGMAX in stage_ir.policies)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from stage_ir.policies.base import ExitPolicy


class Margin(ExitPolicy):
    name = "margin"
    rtl_code = 0
    exits_on_low = False

    def scores(self, zs, tops, classes, tables):
        return np.stack([t[1] - t[2] for t in tops[:-1]]), None

    def threshold_range(self, tab: dict[str, Any], num_exits: int) -> tuple[int, int]:
        return 0, 1 << tab["bits"]

    def float_score(self, x: np.ndarray) -> np.ndarray:
        part = np.sort(x, axis=1)
        return part[:, -1] - part[:, -2]

    def float_to_int_unclamped(self, v: float, tab: dict[str, Any], k: int) -> int:
        return math.ceil(v * 2.0 ** tab["frac"])  # m < 0 clamps to 0: always, as margin >= 0

    def int_to_float(self, t: int, tab: dict[str, Any]) -> float:
        return t * 2.0 ** -tab["frac"]

    def float_grid(self, logits: Sequence[np.ndarray], tables: dict[str, Any], points: int) -> np.ndarray:
        from stage_ir.policies.view import float_scores, real_logits

        m = float_scores(self.name, real_logits(logits, tables)).ravel()
        return np.quantile(m, np.linspace(0.0, 1.0, points)) if m.size else np.zeros(1)

    def hls_context(self, ex, tab, lo, hi, num_classes, count_bits) -> None:
        ex.update(thr_type=f"ap_uint<{ex['bits'] + 1}>", score_type=f"ap_uint<{ex['bits'] + 1}>",
                  rule="exit when top1 - top2 >= threshold")
