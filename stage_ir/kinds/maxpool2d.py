"""maxpool2d: a streaming max pool (cs_maxpool) over the producer's PE channels per cycle."""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field

from stage_ir.cost import Cost
from stage_ir.errors import UserError
from stage_ir.kinds.base import ArrayReader, LayerKind, RtlUnit, divisors
from stage_ir.kinds.matrix import storage_cost
from stage_ir.kinds.spec import LayerPlan, LayerSpec, TorchModule
from stage_ir.kinds.window import window_out_shape


class MaxPool2dLayer(LayerKind):
    kind: Literal["maxpool2d"] = "maxpool2d"
    onnx_ops = ("MaxPool",)
    spatial = True
    kernel: list[int]
    stride: list[int]
    macs: int = 0

    paces = True

    @staticmethod
    def torch_fields(mod) -> dict:
        k = mod.kernel_size if isinstance(mod.kernel_size, tuple) else (mod.kernel_size,) * 2
        s = mod.stride if isinstance(mod.stride, tuple) else (mod.stride,) * 2
        return {"kernel": list(k), "stride": list(s)}

    def reference(self, x: np.ndarray, array: ArrayReader) -> np.ndarray:
        win = sliding_window_view(x, tuple(self.kernel), axis=(2, 3))[:, :, :: self.stride[0], :: self.stride[1]]
        return win.max(axis=(4, 5))

    def stream_cost(self, coef: dict, lanes=1) -> Cost:
        p = coef["maxpool"]
        ch, h, w = self.input.shape
        bits = int(self.input.bits)
        lanes = np.asarray(lanes, dtype=float)
        cycles = h * w * ch / lanes
        out_w = self.output.shape[2]
        row_bits = out_w * ch * bits  # partial maxima of one output row
        lut, bram = storage_cost(row_bits, lanes * bits, 1, coef)
        return Cost(cycles=cycles, latency=cycles + p["pipeline_cycles"],
                    lut=p["base_lut"] + lanes * bits * p["lut_per_cmp_bit"] + lut,
                    ff=lanes * bits * p["ff_per_bit"], bram18=bram)

    def hls_cost(self, coef: dict, memory: dict, reuse_factor=1, strategy: str = "latency") -> Cost:
        n = self.input.size
        ch = self.input.shape[0]
        bits = int(self.input.bits)
        cycles = n / ch  # io_stream: one pixel (all channels) per cycle
        return Cost(cycles=cycles, latency=cycles + coef["latency_overhead"], lut=ch * bits * 2.0, ff=ch * bits * 2.0)

    def rtl_unit(self, array: ArrayReader, where: str, in_lanes: int = 1, chw: Sequence[int] | None = None) -> RtlUnit:
        """cs_maxpool over the lanes the layer before makes; it registers its own output (no FIFO)."""
        self.check_rtl_widths(where)
        c, ih, iw = self.input.shape
        _, oh, ow = self.output.shape
        (kh, kw), (sh, sw) = self.kernel, self.stride
        if c % in_lanes:
            raise UserError(f"{where}: {in_lanes} lanes from the layer before do not divide its {c} channels; "
                            f"pick a PE of the layer before from {divisors(c)}")
        params = {"C": c, "IH": ih, "IW": iw, "KH": kh, "KW": kw, "SH": sh, "SW": sw, "LANES": in_lanes,
                  "EB": self.input.bits}
        cycles = oh * ow * kh * kw * c / in_lanes
        return RtlUnit("cs_maxpool", params, in_lanes, self.input.bits, in_lanes, self.input.bits, {}, cycles,
                       output_fifo=False)


class MaxPoolSpec(LayerSpec):
    type: Literal["maxpool2d"]
    kernel: int = Field(2, ge=1, le=8)
    stride: int | None = Field(None, ge=1, le=8, description="default: kernel")

    torch_class = "torch.nn.MaxPool2d"
    ir_kind = MaxPool2dLayer

    def out_shape(self, shape: tuple[int, ...], num_classes: int, where: str) -> tuple[int, ...]:
        return window_out_shape(where, self.type, shape, None, self.kernel, self.stride or self.kernel, 0)

    def torch_module(self, plan: LayerPlan, raw_output: bool, folded: bool) -> TorchModule:
        return TorchModule(self.torch_class, (self.kernel,), {"stride": self.stride or self.kernel})
