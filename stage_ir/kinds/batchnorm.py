"""batchnorm: trained in float and folded into the compute layer before it (config only)."""
from __future__ import annotations

from typing import Literal

from stage_ir.kinds.spec import LayerPlan, LayerSpec, TorchModule


class BatchNormSpec(LayerSpec):
    """Batch normalisation right after a conv2d or linear layer (before its relu); trained in float,
    folded into that layer's weights and bias at the end of training (the hardware never sees it)."""

    type: Literal["batchnorm"]

    folds_into_previous = True

    def torch_module(self, plan: LayerPlan, raw_output: bool, folded: bool) -> TorchModule:
        if folded:  # already inside the previous layer's weights
            return TorchModule("torch.nn.Identity")
        return TorchModule("torch.nn.BatchNorm2d" if len(plan.in_shape) == 3 else "torch.nn.BatchNorm1d",
                           (plan.in_shape[0],))
