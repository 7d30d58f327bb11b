"""flatten: [C, H, W] to [C*H*W]; free in hardware, the stream order already is the flattened one
(HWC, docs/ir.md: the dense layer after it takes its columns in that order)."""
from __future__ import annotations

from typing import Literal

import numpy as np

from stage_ir.cost import Cost
from stage_ir.kinds.base import ArrayReader, LayerKind


class FlattenLayer(LayerKind):
    kind: Literal["flatten"] = "flatten"
    macs: int = 0

    hardware = False

    def reference(self, x: np.ndarray, array: ArrayReader) -> np.ndarray:
        return x.reshape(len(x), -1)

    def stream_cost(self, coef: dict, lanes=1) -> Cost:
        return Cost()

    def hls_cost(self, coef: dict, memory: dict, reuse_factor=1, strategy: str = "latency") -> Cost:
        return Cost()

    def rtl_unit(self, array: ArrayReader, where: str, in_lanes: int = 1, chw=None, first: bool = False) -> None:
        return None
