"""The sliding-window unit (cs_swu) that feeds a windowed kind's MVU: how many input pixels per
beat it reads as the network's first layer, its window walk, its line buffer and read lanes."""
from __future__ import annotations

import numpy as np

from stage_ir.errors import UserError
from stage_ir.kinds.matrix import MatrixGeometry, divisors, storage_cost, window_walk

# Cap on input pixels per beat: 8 pixels of a 4-bit 1-channel image fill a 32-bit AXI-stream beat,
# the usual width of a DMA / video stream feeding a small FPGA design; wider asks more of the source
# and widens the first layer's line-buffer word (its LUTs grow with it).
MAX_PIXELS_PER_BEAT = 8


def pixels_per_beat(geo: MatrixGeometry, ih: int, iw: int, pe, simd):
    """IPB: input pixels per beat of the network's first layer (the one fed by s_axis), THE rule
    the cost model, the DSE and the RTL generator share.  numpy-friendly in pe / simd.

    A conv reading one pixel per beat needs IH*IW cycles per sample, which bounds it once its
    window walk, OH*OW*(OC/PE)*(KH*KW*IC/SIMD) cycles, is shorter (a valid 5x5 conv on 28x28 at
    one output pixel per cycle: 784 to read, 576 to compute).  IPB is the smallest divisor P of
    IW, P <= MAX_PIXELS_PER_BEAT, with IH*IW/P <= the walk; if none reaches it, the largest such
    divisor.  1 for a conv whose pixel takes several beats (SIMD < IC: one channel fold per beat,
    cs_swu's CF > 1).  Only the first layer may use it: every later layer is fed by a layer that
    makes PE channels per cycle."""
    pe_a, simd_a = np.asarray(pe), np.asarray(simd)
    shape = np.broadcast_shapes(pe_a.shape, simd_a.shape)
    scalar = shape == ()
    walk = window_walk(geo, pe_a, simd_a)
    cands = np.array([p for p in divisors(iw) if p <= MAX_PIXELS_PER_BEAT])   # ascending, starts at 1
    ok = (ih * iw / cands) <= np.broadcast_to(walk, shape)[..., None]
    pick = np.where(ok.any(axis=-1), ok.argmax(axis=-1), len(cands) - 1)
    ipb = np.where(np.broadcast_to(simd_a, shape) >= geo.simd_dim, cands[pick], 1).astype(int)
    return int(ipb) if scalar else ipb


def pixels_per_beat_problem(geo: MatrixGeometry, iw: int, simd: int, ipb: int) -> str | None:
    """What cs_swu cannot do with `ipb` input pixels per beat at SIMD `simd`, or None: it reads
    whole pixels (SIMD >= IC) a divisor of IW at a time, at most MAX_PIXELS_PER_BEAT."""
    if ipb == 1:
        return None
    legal = [p for p in divisors(iw) if p <= MAX_PIXELS_PER_BEAT]
    if ipb not in legal:
        return f"pixels_per_beat {ipb} is not one of {legal} (divisors of the input width {iw}, at most {MAX_PIXELS_PER_BEAT})"
    if simd < geo.simd_dim:
        return f"pixels_per_beat {ipb} needs whole pixels per beat: simd {simd} is below the {geo.simd_dim} input channels"
    return None


def window_cycles(geo: MatrixGeometry, ih: int, iw: int, in_lanes, pe, simd):
    """Cycles per sample of a windowed MVU (measured exact in steady state): its window walk, or
    reading the input, `in_lanes` elements per beat, when that is slower.  numpy-friendly."""
    return np.maximum(window_walk(geo, pe, simd), ih * iw * geo.simd_dim / in_lanes)


def swu_rows(kh: int, sh: int) -> int:
    """cs_swu's line buffer: BUF_ROWS = 2 KH + SH - 1 input rows."""
    return 2 * kh + sh - 1


def swu_extra(geo: MatrixGeometry, ic: int, w_in: int, kernel: list[int], pad_w: int, simd, in_lanes,
              coef: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(LUT, FF, BRAM18) of cs_swu beyond its fitted base: the line buffer, and KP read lanes when
    SIMD = KP*IC (parallel window), each with its own copy of the line buffer (yosys replicates a
    memory per read port), address and padding logic."""
    kh, kw = kernel
    line_bits = ((kh - 1) * (w_in + 2 * pad_w) + kw) * ic * geo.x_bits
    s = coef["swu"]
    kp = geo.kernel_positions(simd).astype(float)
    in_lanes = np.asarray(in_lanes, dtype=float)
    lut, bram = storage_cost(line_bits, in_lanes * geo.x_bits, kp, coef)
    extra = kp - 1.0  # read lanes beyond the first
    lane_bits = ic * geo.x_bits
    lut = lut + extra * (s.get("lut_per_read_lane", 0.0) + lane_bits * s.get("lut_per_read_lane_bit", 0.0))
    ff = extra * (s.get("ff_per_read_lane", 0.0) + lane_bits * s.get("ff_per_read_lane_bit", 0.0))
    return lut, ff, bram


def window_out_shape(where: str, kind: str, shape: tuple[int, ...], channels: int | None, kernel: int, stride: int,
                     padding: int) -> tuple[int, int, int]:
    """[C, OH, OW] of a square window over a [C, H, W] input (a config layer's shape rule);
    `channels`: the output channels (None: the input's)."""
    if len(shape) != 3:
        raise UserError(f"{where}: {kind} needs a [C, H, W] input but gets {list(shape)}; move it before the flatten")
    c, h, w = shape
    oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    if oh < 1 or ow < 1:
        raise UserError(f"{where}: {kind} kernel {kernel} does not fit its {h}x{w} input; use a smaller kernel or "
                        "fewer pools")
    return (c if channels is None else channels, oh, ow)
