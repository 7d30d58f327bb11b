"""dense: a fully connected layer (QuantLinear) on a flat input; an MVU of MW = in_features."""
from __future__ import annotations

from typing import Literal

import numpy as np

from stage_ir.kinds.base import ArrayReader
from stage_ir.kinds.matrix import MatrixGeometry, MatrixLayer


class DenseLayer(MatrixLayer):
    kind: Literal["dense"] = "dense"
    in_features: int
    out_features: int

    @property
    def macs(self) -> int:
        return self.in_features * self.out_features

    def array_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.out_features, self.in_features), (self.out_features,)

    def reference(self, x: np.ndarray, array: ArrayReader) -> np.ndarray:
        return self.requantise(x @ array(self.weight).T + array(self.bias))

    @property
    def geometry(self) -> MatrixGeometry:
        mw, mh = self.in_features, self.out_features
        return MatrixGeometry(mw, mh, mw, 1, self.input.bits, self.w_bits, self.acc_bits, self.out_bits)
