"""patience: exit when the class has agreed over `threshold` consecutive exits; the
(previous class, count) state travels with the sample from exit to exit."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from stage_ir.errors import UserError
from stage_ir.policies.base import ExitPolicy


class Patience(ExitPolicy):
    name = "patience"
    rtl_code = 3
    exits_on_low = False
    carries_state = True

    def scores(self, zs, tops, classes, tables):
        n = zs[0].shape[0]
        score = np.empty((len(zs) - 1, n), dtype=np.int64)
        count = np.ones(n, dtype=np.int64)
        for k in range(len(zs) - 1):
            if k > 0:  # the (prev_class, count) state travels with the sample
                count = np.where(classes[k] == classes[k - 1], count + 1, 1)
            score[k] = count
        return score, None

    def threshold_range(self, tab: dict[str, Any], num_exits: int) -> tuple[int, int]:
        return 1, num_exits

    def out_of_range(self, t: int, k: int, lo: int, hi: int) -> str | None:
        if t > hi:
            return f"patience n={t} at exit {k} is larger than the number of exits ({hi}); use n in [1, {hi}]"
        return None

    def float_scores(self, real: Sequence[np.ndarray]) -> np.ndarray:
        classes = np.stack([np.argmax(x, axis=1) for x in real])
        counts = np.ones_like(classes[:-1])
        for k in range(1, len(real) - 1):
            counts[k] = np.where(classes[k] == classes[k - 1], counts[k - 1] + 1, 1)
        return counts

    def float_to_int(self, value: float, tab: dict[str, Any], k: int, lo: int, hi: int) -> int:
        v = float(value)
        if v != int(v) or v < 1:
            raise UserError(f"patience n={value!r} at exit {k} must be an integer >= 1")
        if v > hi:
            raise UserError(f"patience n={int(v)} at exit {k} is larger than the number of exits ({hi}); "
                            f"use n in [1, {hi}]")
        return int(v)

    def int_to_float(self, t: int, tab: dict[str, Any]) -> float:
        return float(t)

    def float_grid(self, logits: Sequence[np.ndarray], tables: dict[str, Any], points: int) -> np.ndarray:
        return np.arange(1, tables["num_exits"] + 1)

    def usable(self, num_exits: int) -> bool:
        return num_exits >= 2

    def hls_context(self, ex, tab, lo, hi, num_classes, count_bits) -> None:
        ex.update(thr_type=f"ap_uint<{count_bits}>", score_type=f"ap_uint<{count_bits}>",
                  rule="exit when the class agreed count >= threshold")

    def sequential_extra(self, t, num_classes, logit_bits, tab, cmp_bits):
        return [(2 * 8, 8)], 0.0  # class compare + count compare; the count
