"""flatten: [C, H, W] to [C*H*W]; free in hardware, the stream order already is the flattened one
(HWC, docs/ir.md: the dense layer after it takes its columns in that order)."""
from __future__ import annotations

import math
from typing import Literal

import numpy as np

from stage_ir.cost import Cost
from stage_ir.errors import UserError
from stage_ir.kinds.base import ArrayReader, LayerKind
from stage_ir.kinds.spec import LayerPlan, LayerSpec, TorchModule


class FlattenLayer(LayerKind):
    kind: Literal["flatten"] = "flatten"
    macs: int = 0

    hardware = False

    @staticmethod
    def torch_fields(mod) -> dict:
        return {}

    def reference(self, x: np.ndarray, array: ArrayReader) -> np.ndarray:
        return x.reshape(len(x), -1)

    def stream_cost(self, coef: dict, lanes=1) -> Cost:
        return Cost()

    def hls_cost(self, coef: dict, memory: dict, reuse_factor=1, strategy: str = "latency") -> Cost:
        return Cost()

    def rtl_unit(self, array: ArrayReader, where: str, in_lanes: int = 1, chw=None) -> None:
        return None


class FlattenSpec(LayerSpec):
    type: Literal["flatten"]

    torch_class = "torch.nn.Flatten"
    ir_kind = FlattenLayer

    def out_shape(self, shape: tuple[int, ...], num_classes: int, where: str) -> tuple[int, ...]:
        if len(shape) != 3:
            raise UserError(f"{where}: flatten needs a [C, H, W] input but gets {list(shape)}; remove it")
        return (math.prod(shape),)

    def torch_module(self, plan: LayerPlan, raw_output: bool, folded: bool) -> TorchModule:
        return TorchModule(self.torch_class)
