"""What every layer kind is and answers: the contract the generic walks (reference, cost model,
DSE, generators) rely on, so that none of them names a kind."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from stage_ir.cost import Cost
from stage_ir.errors import UserError
from stage_ir.tensors import IRModel, TensorSpec

# widths the RTL module library takes (cs_mvu IB, cs_maxpool EB; the threshold unit's logits)
MAX_ACT_BITS = 16
MAX_LOGIT_BITS = 32

# reads an integer array the IR refers to (Design.array)
ArrayReader = Callable[[str], np.ndarray]


@dataclass
class RtlUnit:
    """One layer as an instance of the RTL module library (templates/rtl): what the generator
    (codesign.rtl) and the per-layer tests need."""

    module: str
    params: dict[str, Any]
    in_lanes: int
    in_bits: int
    out_lanes: int
    out_bits: int
    files: dict[str, str]  # ROM init files (name -> $readmemh text)
    cycles: float  # analytical cycles per sample (docs/ir.md)
    input_fifo: int = 0  # beats of a FIFO the generator puts in front of the unit (0: none)
    output_fifo: bool = True  # a LAYER_FIFO_DEPTH FIFO after it (cuts its combinational ready path)
    pixels_per_beat: int | None = None  # input pixels per beat, for a unit that can read several


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_fold(where: str, what: str, value: int, dim: int, dim_name: str, legal: Sequence[int] | None = None) -> None:
    """A folding factor the RTL unit takes: a divisor of `dim` (or one of `legal`)."""
    rule = f"does not divide {dim_name}={dim}" if legal is None else f"is not legal for {dim_name}={dim}"
    legal = divisors(dim) if legal is None else legal
    if value not in legal:
        raise UserError(f"{where}: {what}={value} {rule}; legal values: {', '.join(map(str, legal))}")


def kind_name(cls: type["LayerKind"]) -> str:
    """The `kind` a design.json layer of this class gives."""
    return cls.model_fields["kind"].default


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
    # the ONNX operators it is in a stage's QONNX after the HLS recipe (Gemm -> MatMul)
    onnx_ops: ClassVar[tuple[str, ...]] = ()
    # works on [C, H, W] maps: hls4ml needs the stage graph channels-last
    spatial: ClassVar[bool] = False

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

    def check_rtl_widths(self, where: str) -> None:
        """The widths the RTL modules take (MAX_ACT_BITS inputs)."""
        if self.input.bits > MAX_ACT_BITS:
            raise UserError(f"{where}: {self.input.bits}-bit inputs; the RTL modules take at most {MAX_ACT_BITS}-bit "
                            "activations (lower the activation bit width)")

    def rtl_unit(self, array: ArrayReader, where: str, in_lanes: int = 1, chw: Sequence[int] | None = None) -> RtlUnit | None:
        """The library module, parameters and ROM files of this layer; None for a kind without
        hardware.  `in_lanes`: elements per beat arriving (the generator converts to the unit's);
        `chw`: the [C, H, W] shape flattened before it (the input pixels per beat of the network's
        first layer are its Folding's); `where` names the layer in messages."""
        raise UserError(f"{where}: kind {self.kind!r} has no RTL template")
