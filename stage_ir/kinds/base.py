"""What every layer kind is and answers: the contract the generic walks (reference, cost model,
DSE, generators) rely on, so that none of them names a kind."""
from __future__ import annotations

from typing import Callable, ClassVar

import numpy as np

from stage_ir.cost import Cost
from stage_ir.tensors import IRModel, TensorSpec

# reads an integer array the IR refers to (Design.array)
ArrayReader = Callable[[str], np.ndarray]


class LayerKind(IRModel):
    """One layer of a stage. A kind is a subclass with a `kind: Literal[...]` field and a `macs`
    (property or field), registered in stage_ir.kinds; its class-level flags tell the walks how
    to treat it."""

    name: str
    input: TensorSpec
    output: TensorSpec

    # weights and a (PE, SIMD) folding: a matrix-vector unit (stage_ir.kinds.matrix.MatrixLayer)
    computes: ClassVar[bool] = False
    # its cycles pace the stage it sits in (the threshold unit's form follows the pace)
    paces: ClassVar[bool] = False
    # False: no hardware, the stream already is the result (a flatten of an HWC stream)
    hardware: ClassVar[bool] = True

    def reference(self, x: np.ndarray, array: ArrayReader) -> np.ndarray:
        """The layer's exact integer semantics on a batch (int64), docs/ir.md."""
        raise NotImplementedError

    def stream_cost(self, coef: dict, lanes=1) -> Cost:
        """RTL cost of a layer that is not a matrix-vector unit, fed `lanes` elements per beat
        (the producer's PE); numpy-broadcastable in `lanes`.  `coef`: coefficients.yaml's rtl."""
        raise NotImplementedError

    def hls_cost(self, coef: dict, memory: dict, reuse_factor=1, strategy: str = "latency") -> Cost:
        """HLS (hls4ml io_stream) cost; `coef`: coefficients.yaml's hls, `memory`: its rtl.memory."""
        raise NotImplementedError
