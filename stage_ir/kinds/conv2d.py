"""conv2d: a 2-D convolution (QuantConv2d), zero padding; cs_swu's sliding window feeding an MVU of
MW = KH*KW*IC, one output pixel per position, HWC stream order (docs/ir.md)."""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field

from stage_ir.cost import Cost
from stage_ir.kinds import rom, window
from stage_ir.kinds.base import ArrayReader, RtlUnit, check_fold
from stage_ir.kinds.matrix import MatrixGeometry, MatrixLayer, mvu_cost
from stage_ir.kinds.spec import BITS, LayerPlan, LayerSpec, Quant, TorchModule


class Conv2dLayer(MatrixLayer):
    kind: Literal["conv2d"] = "conv2d"
    onnx_ops = ("Conv",)
    spatial = True
    in_channels: int
    out_channels: int
    kernel: list[int]
    stride: list[int]
    padding: list[int]

    @property
    def macs(self) -> int:
        _, oh, ow = self.output.shape
        return oh * ow * self.out_channels * self.in_channels * self.kernel[0] * self.kernel[1]

    def array_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.out_channels, self.in_channels, *self.kernel), (self.out_channels,)

    @staticmethod
    def torch_fields(mod) -> dict:
        """This kind's IR fields from its trained QuantConv2d."""
        return {"in_channels": mod.in_channels, "out_channels": mod.out_channels, "kernel": list(mod.kernel_size),
                "stride": list(mod.stride), "padding": list(mod.padding)}

    def reference(self, x: np.ndarray, array: ArrayReader) -> np.ndarray:
        """x [N, C, H, W] int64, w [OC, C, KH, KW]: integer cross-correlation with zero padding."""
        w, b = array(self.weight), array(self.bias)
        ph, pw = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        kh, kw = w.shape[2:]
        win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, :: self.stride[0], :: self.stride[1]]
        acc = np.einsum("nchwij,ocij->nohw", win, w, optimize=True)
        return self.requantise(acc + b[None, :, None, None])

    @property
    def geometry(self) -> MatrixGeometry:
        kh, kw = self.kernel
        ic, oc = self.in_channels, self.out_channels
        oh, ow = self.output.shape[1:3]
        return MatrixGeometry(kh * kw * ic, oc, ic, oh * ow, self.input.bits, self.w_bits, self.acc_bits,
                              self.out_bits)

    def pixels_per_beat(self, pe, simd):
        _, ih, iw = self.input.shape
        return window.pixels_per_beat(self.geometry, ih, iw, pe, simd)

    def pixels_per_beat_problem(self, ipb: int) -> str | None:
        _, _, iw = self.input.shape
        return window.pixels_per_beat_problem(self.geometry, iw, self.folding.simd, ipb)

    def rtl_cost(self, coef: dict, pe=1, simd=1, ipb=1) -> Cost:
        """Sliding-window unit feeding an MVU SIMD columns of the (ky, kx, c) window at a time.

        SIMD = KP*IC (cs_swu's parallel window): KP read lanes; the input stays IC elements per
        beat, so a sample takes at least IH*IW cycles to read, unless the layer is the network's
        first: it may then take `ipb` pixels per beat (Folding.pixels_per_beat), and its
        line-buffer word is IPB pixels wide."""
        geo = self.geometry
        core = mvu_cost(geo, pe, simd, coef)
        ic, _, w_in = self.input.shape
        in_lanes = self.in_lanes(pe, simd, ipb)
        lut, ff, bram = window.swu_extra(geo, ic, w_in, self.kernel, self.padding[1], simd, in_lanes, coef)
        s = coef["swu"]
        cycles = self.cycles(pe, simd, ipb)
        return Cost(cycles=cycles, latency=core.latency - core.cycles + cycles + s["pipeline_cycles"],
                    lut=core.lut + s["base_lut"] + lut, ff=core.ff + s["base_ff"] + ff,
                    dsp=core.dsp, bram18=core.bram18 + bram)

    def cycles(self, pe=1, simd=1, ipb=1):
        """Its window walk, or reading the input when that is slower (cs_conv, Verilator-exact)."""
        _, ih, iw = self.input.shape
        return window.window_cycles(self.geometry, ih, iw, self.in_lanes(pe, simd, ipb), pe, simd)

    def rtl_unit(self, array: ArrayReader, where: str, in_lanes: int = 1, chw: Sequence[int] | None = None) -> RtlUnit:
        """cs_conv: cs_swu's window (IPB pixels per beat as the network's first layer) into cs_mvu."""
        self.check_rtl_widths(where)
        pe, simd = self.folding.pe, self.folding.simd
        check_fold(where, "pe", pe, self.out_channels, "out_channels")
        # a divisor of in_channels, or KP*in_channels with KP dividing kh*kw
        check_fold(where, "simd", simd, self.in_channels, "in_channels", self.geometry.simds)
        _, ih, iw = self.input.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        params, files = self.mvu_params(array, rom.conv_weight_matrix(array(self.weight)))
        params = {"IC": self.in_channels, "OC": self.out_channels, "IH": ih, "IW": iw, "KH": kh, "KW": kw,
                  "SH": sh, "SW": sw, "PH": ph, "PW": pw, **params}
        ipb = self.folding.pixels_per_beat
        lanes = int(self.in_lanes(pe, simd, ipb))
        if ipb > 1:  # left out at 1: the tops of designs without it stay as they were
            params["IPB"] = ipb
        # the window walk, or reading the input when KP positions per beat outrun it
        cycles = float(self.cycles(pe, simd, ipb))
        return RtlUnit("cs_conv", params, lanes, self.input.bits, pe, self.out_bits, files, cycles,
                       pixels_per_beat=ipb)

    # ---- RTL timing: the window decides how long a sample holds its input rows
    def _swu_rows(self) -> int:
        return window.swu_rows(self.kernel[0], self.stride[0])

    def input_queue(self, pe: int) -> int:
        # while the last window rows of a sample (KH - 1 of them) are still in use, the rest of
        # cs_swu's rows take the next sample; a whole next image fits when IH rows do (Verilator,
        # digits CNN 8x4x4 input: behaves as a one-sample queue)
        return int(self._swu_rows() - (self.kernel[0] - 1) >= self.input.shape[1])

    def drain_fraction(self, pe: int) -> float:
        """cs_swu holds BUF_ROWS = 2 KH + SH - 1 input rows: the rest enter as finished output rows
        release theirs (B-LeNet conv2, 12 rows, 8 output rows: after 2 of them, 1/4 of the II)."""
        sh, ph = self.stride[0], self.padding[0]
        ih, oh = self.input.shape[1], self.output.shape[1]
        last_row = ih - 1 - self._swu_rows()  # the last input row that waits for a release
        return 0.0 if last_row < 0 else min(1.0, -(-(last_row + ph + 1) // sh) / oh)

    def write_span(self, ii: float, pe: int, simd: int) -> float:
        """It emits as its window walk advances, over the stage's II less the first output row."""
        oh = int(self.output.shape[1])
        return ii * (oh - 1) / oh

    def folds_after_input(self, pe: int, simd: int) -> int:
        return self.fold_cycles(pe, simd)[1] // int(self.output.shape[1])


class Conv2dSpec(LayerSpec):
    """2-D convolution (QuantConv2d), zero padding; `bits` are its weight bits."""

    type: Literal["conv2d"]
    out_channels: int = Field(ge=1)
    kernel: int = Field(3, ge=1, le=11)
    stride: int = Field(1, ge=1, le=4)
    padding: int = Field(0, ge=0, le=5)
    bits: BITS | None = None

    computes = True
    torch_class = "brevitas.nn.QuantConv2d"
    ir_kind = Conv2dLayer

    def out_shape(self, shape: tuple[int, ...], num_classes: int, where: str) -> tuple[int, ...]:
        return window.window_out_shape(where, self.type, shape, self.out_channels, self.kernel, self.stride,
                                       self.padding)

    def torch_module(self, plan: LayerPlan, raw_output: bool, folded: bool) -> TorchModule:
        return TorchModule(self.torch_class, (plan.in_shape[0], plan.out_shape[0], self.kernel),
                           {"stride": self.stride, "padding": self.padding, "bias": True,
                            "weight_quant": Quant("weight", plan.bits), "bias_quant": Quant("bias"),
                            "return_quant_tensor": True})
