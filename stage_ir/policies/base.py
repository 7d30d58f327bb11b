"""What every exit policy is and answers (docs/policies.md): the contract the generic views
(stage_ir.policies.view), calibration, the back ends and the cost model rely on, so that none of
them names a policy."""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from stage_ir.errors import UserError


class ExitPolicy:
    """One exit policy. A policy is a subclass registered in stage_ir.policies; instances hold no state."""

    name: ClassVar[str]
    rtl_code: ClassVar[int]          # cs_threshold_unit's POLICY parameter
    exits_on_low: ClassVar[bool]     # integer rule: exit when score <= threshold (else >= threshold)
    float_exits_on_low: ClassVar[bool] = False  # float rule: exit when score <= threshold (entropy)
    exp_table: ClassVar[bool] = False  # its exits need the exp table (softmax-based)
    log_table: ClassVar[bool] = False  # and the log2 table (entropy)
    carries_state: ClassVar[bool] = False  # a per-sample state travels from exit to exit (patience)
    passes: ClassVar[int] = 1        # sequential threshold unit: passes over the logits
    pipe_stages: ClassVar[int] = 0   # cs_threshold_pipe: stages after the argmax tree

    # ---- integer view
    def scores(self, zs: list[np.ndarray], tops: list[tuple], classes: np.ndarray,
               tables: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """(score [K-1, N], sum_e [K-1, N] or None) of every early exit."""
        raise NotImplementedError

    def decide(self, score: np.ndarray, threshold: int, sum_e: np.ndarray | None) -> np.ndarray:
        return score <= threshold if self.exits_on_low else score >= threshold

    def threshold_range(self, tab: dict[str, Any], num_exits: int) -> tuple[int, int]:
        """Inclusive integer range of an exit's threshold (its table `tab`)."""
        raise NotImplementedError

    def never_threshold(self, lo: int, hi: int) -> int:
        """The threshold with which the exit never lets a sample leave."""
        return lo if self.exits_on_low else hi

    def out_of_range(self, t: int, k: int, lo: int, hi: int) -> str | None:
        """A message of its own for a threshold outside [lo, hi] (else the generic one)."""
        return None

    # ---- float view
    def float_score(self, x: np.ndarray) -> np.ndarray:
        """Float score of one early exit from its real logits [N, C]."""
        raise NotImplementedError

    def float_scores(self, real: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self.float_score(x) for x in real[:-1]])

    def float_to_int(self, value: float, tab: dict[str, Any], k: int, lo: int, hi: int) -> int:
        """Integer threshold of exit k matching finite float threshold `value` (clamped to [lo, hi],
        which changes no decision: beyond the range every sample already exits, or none does)."""
        return int(min(max(self.float_to_int_unclamped(float(value), tab, k), lo), hi))

    def float_to_int_unclamped(self, v: float, tab: dict[str, Any], k: int) -> int:
        raise NotImplementedError

    def int_to_float(self, t: int, tab: dict[str, Any]) -> float:
        raise NotImplementedError

    # ---- calibration (codesign.frontend.calibration): levels grow with aggressiveness
    def sample_levels(self, score: np.ndarray, sum_e: np.ndarray | None) -> np.ndarray:
        """[K-1, N]: the least aggressive level at which each sample leaves at each early exit."""
        return score.copy() if self.exits_on_low else -score

    def float_grid(self, logits: Sequence[np.ndarray], tables: dict[str, Any], points: int) -> np.ndarray:
        """Float thresholds spanning the policy's useful range."""
        raise NotImplementedError

    def usable(self, num_exits: int) -> bool:
        """Whether the policy means anything for a network of `num_exits` exits (evaluate's curves)."""
        return True

    # ---- back ends
    def rtl_params(self, tab: dict[str, Any], k: int) -> tuple[dict[str, Any], dict[str, str]]:
        """cs_threshold_unit / cs_threshold_pipe parameters and ROM files of early exit k."""
        return {}, {}

    def hls_context(self, ex: dict[str, Any], tab: dict[str, Any], lo: int, hi: int, num_classes: int,
                    count_bits: int) -> None:
        """Fill the HLS threshold unit's template context of one early exit (templates/hls)."""
        raise NotImplementedError

    # ---- cost (hw_models.rtl_cost): what the sequential unit adds to the margin unit
    def sequential_extra(self, t: dict, num_classes: int, logit_bits: int, tab: dict[str, Any],
                         cmp_bits: float) -> tuple[list[tuple[float, float]], float]:
        """([(LUT, FF) added in order], DSPs) of this policy's logic beside the top-two scan."""
        return [], 0.0

    def pipe_dsp(self, num_classes: int) -> float:
        return 0.0


def policy_error(policy: str, known: Sequence[str]) -> UserError:
    return UserError(f"unknown exit policy {policy!r}; use one of: {', '.join(known)}")
