"""dense: a fully connected layer (QuantLinear) on a flat input; an MVU of MW = in_features."""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from pydantic import Field

from stage_ir.errors import UserError
from stage_ir.kinds.base import ArrayReader, RtlUnit, check_fold
from stage_ir.kinds.matrix import MatrixGeometry, MatrixLayer
from stage_ir.kinds.spec import BITS, LayerPlan, LayerSpec, Quant, TorchModule


class DenseLayer(MatrixLayer):
    kind: Literal["dense"] = "dense"
    onnx_ops = ("MatMul",)
    in_features: int
    out_features: int

    @property
    def macs(self) -> int:
        return self.in_features * self.out_features

    def array_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.out_features, self.in_features), (self.out_features,)

    @staticmethod
    def torch_fields(mod) -> dict:
        """This kind's IR fields from its trained QuantLinear."""
        return {"in_features": mod.in_features, "out_features": mod.out_features}

    def reference(self, x: np.ndarray, array: ArrayReader) -> np.ndarray:
        return self.requantise(x @ array(self.weight).T + array(self.bias))

    @property
    def geometry(self) -> MatrixGeometry:
        mw, mh = self.in_features, self.out_features
        return MatrixGeometry(mw, mh, mw, 1, self.input.bits, self.w_bits, self.acc_bits, self.out_bits)

    def rtl_unit(self, array: ArrayReader, where: str, in_lanes: int = 1, chw: Sequence[int] | None = None) -> RtlUnit:
        """cs_mvu; fed in HWC order after a flatten of [C, H, W] (`chw`), so its columns are permuted."""
        self.check_rtl_widths(where)
        pe, simd = self.folding.pe, self.folding.simd
        check_fold(where, "pe", pe, self.out_features, "out_features")
        check_fold(where, "simd", simd, self.in_features, "in_features")
        weight = array(self.weight)
        if chw is not None and len(chw) == 3:
            weight = weight[:, hwc_permutation(chw)]
        params, files = self.mvu_params(array, weight)
        params = {"MW": self.in_features, "MH": self.out_features, **params}
        cycles = float(self.cycles(pe, simd))
        # the MVU takes a sample's inputs in its first output fold only, then computes the other
        # folds from its input buffer: a one-sample FIFO keeps the producer running meanwhile
        input_fifo = max(2, self.in_features // simd) if self.out_features > pe else 0
        return RtlUnit("cs_mvu", params, simd, self.input.bits, pe, self.out_bits, files, cycles, input_fifo=input_fifo)


def hwc_permutation(chw: Sequence[int]) -> np.ndarray:
    """Column order of a dense layer fed in HWC order: new column j = IR (CHW) column perm[j]."""
    c, h, w = chw
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


class LinearSpec(LayerSpec):
    """Fully connected layer (QuantLinear); `bits` are its weight bits."""

    type: Literal["linear"]
    out_features: int | None = Field(None, ge=1, description="outputs; default: number of classes (heads only)")
    bits: BITS | None = Field(None, description="weight bits; default quant.weight_bits")

    computes = True
    classifier = True
    torch_class = "brevitas.nn.QuantLinear"
    ir_kind = DenseLayer

    def out_shape(self, shape: tuple[int, ...], num_classes: int, where: str) -> tuple[int, ...]:
        if len(shape) != 1:
            raise UserError(f"{where}: linear layer gets a {list(shape)} feature map; put a flatten before it")
        return (self.out_features or num_classes,)

    def torch_module(self, plan: LayerPlan, raw_output: bool, folded: bool) -> TorchModule:
        return TorchModule(self.torch_class, (plan.in_shape[0], plan.out_shape[0]),
                           {"bias": True, "weight_quant": Quant("weight", plan.bits), "bias_quant": Quant("bias"),
                            "return_quant_tensor": not raw_output})
