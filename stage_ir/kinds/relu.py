"""relu: the quantised activation of the compute layer before it (config only): the IR has no
relu layer, it is that layer's `act` (requantisation, docs/ir.md)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from stage_ir.kinds.spec import BITS, LayerPlan, LayerSpec, Quant, TorchModule


class ReluSpec(LayerSpec):
    """Quantised ReLU (FLOOR rounding, power-of-two scale); `bits` are activation bits."""

    type: Literal["relu"]
    bits: BITS | None = Field(None, description="activation bits; default quant.act_bits")

    activation = True
    act_bits = True
    torch_class = "brevitas.nn.QuantReLU"

    def torch_module(self, plan: LayerPlan, raw_output: bool, folded: bool) -> TorchModule:
        return TorchModule(self.torch_class, (), {"act_quant": Quant("act", plan.bits), "return_quant_tensor": True})
