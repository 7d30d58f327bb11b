"""Shapes and widths of the IR's layers (docs/ir.md), read from design dicts."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from stage_ir.errors import UserError

COMPUTE_KINDS = ("dense", "conv2d")
KNOWN_KINDS = ("dense", "conv2d", "maxpool2d", "flatten")


@dataclass(frozen=True)
class MatrixGeometry:
    """A compute layer seen as a matrix-vector unit applied at `positions` pixels."""
    mw: int           # matrix width: inputs per output (in_features or kh*kw*ic)
    mh: int           # matrix height: outputs (out_features or oc)
    simd_dim: int     # inputs of one position: in_features, or ic (a conv's channels)
    positions: int    # output pixels (1 for dense)
    x_bits: int
    w_bits: int
    acc_bits: int
    out_bits: int     # activation bits, or acc_bits for logits

    @property
    def simds(self) -> tuple[int, ...]:
        """Legal SIMD values (`legal_simds`)."""
        return legal_simds(self.mw, self.simd_dim)

    def kernel_positions(self, simd):
        """KP: kernel positions per input beat of the MVU (1 unless SIMD > simd_dim); numpy-friendly."""
        return np.maximum(np.asarray(simd) // self.simd_dim, 1)

    def in_lanes(self, simd):
        """Elements per beat the layer's input stream carries: SIMD, or a conv's IC when SIMD = KP*IC."""
        return np.minimum(np.asarray(simd), self.simd_dim)


def legal_simds(mw: int, simd_dim: int) -> tuple[int, ...]:
    """SIMD values a compute layer takes (the one definition: DSE, RTL generator, checks).

    A divisor of simd_dim (in_features; a conv's IC: channel folds of one kernel position
    per beat), or, for a conv (mw = KH*KW*IC), KP*IC with KP dividing KH*KW: cs_swu's
    parallel-window mode, KP kernel positions of all channels per beat, so a conv with few
    channels is not bound to KH*KW beats per output pixel.
    """
    kk = mw // simd_dim
    return tuple(sorted(set(divisors(simd_dim)) | {kp * simd_dim for kp in divisors(kk)}))


# Cap on input pixels per beat: 8 pixels of a 4-bit 1-channel image fill a 32-bit AXI-stream beat,
# the usual width of a DMA / video stream feeding a small FPGA design; wider asks more of the source
# and widens the first layer's line-buffer word (its LUTs grow with it).
MAX_PIXELS_PER_BEAT = 8


def input_layer_name(stages: list[dict]) -> str | None:
    """The layer the top's s_axis feeds: the network's first layer that is not a flatten
    (stage 0's first layer; codesign.rtl sizes s_axis from it)."""
    for stage in stages:
        for layer in [*stage.get("layers", []), *stage.get("head", [])]:
            if layer.get("kind") != "flatten":
                return layer.get("name")
    return None


def input_pixels_per_beat(layer: dict, pe, simd):
    """IPB: input pixels per beat of the network's first layer (the one fed by s_axis), THE rule
    the cost model, the DSE and the RTL generator share.  numpy-friendly in pe / simd.

    A conv reading one pixel per beat needs IH*IW cycles per sample, which bounds it once its
    window walk, OH*OW*(OC/PE)*(KH*KW*IC/SIMD) cycles, is shorter (a valid 5x5 conv on 28x28 at
    one output pixel per cycle: 784 to read, 576 to compute).  IPB is the smallest divisor P of
    IW, P <= MAX_PIXELS_PER_BEAT, with IH*IW/P <= the walk; if none reaches it, the largest such
    divisor.  1 for a layer that is not a conv, and for a conv whose pixel takes several beats
    (SIMD < IC: one channel fold per beat, cs_swu's CF > 1).  Only the first layer may use it:
    every later layer is fed by a layer that makes PE channels per cycle."""
    pe_a, simd_a = np.asarray(pe), np.asarray(simd)
    shape = np.broadcast_shapes(pe_a.shape, simd_a.shape)
    scalar = shape == ()
    if layer.get("kind") != "conv2d":
        return 1 if scalar else np.ones(shape, dtype=int)
    geo = matrix_geometry(layer)
    _, ih, iw = (int(v) for v in layer["input"]["shape"])
    walk = _window_walk(geo, pe_a, simd_a)
    cands = np.array([p for p in divisors(iw) if p <= MAX_PIXELS_PER_BEAT])   # ascending, starts at 1
    ok = (ih * iw / cands) <= np.broadcast_to(walk, shape)[..., None]
    pick = np.where(ok.any(axis=-1), ok.argmax(axis=-1), len(cands) - 1)
    ipb = np.where(np.broadcast_to(simd_a, shape) >= geo.simd_dim, cands[pick], 1).astype(int)
    return int(ipb) if scalar else ipb


def conv_cycles(layer: dict, pe, simd, first: bool = False):
    """Cycles per sample of a conv (cs_conv, measured exact in steady state): its window walk, or
    reading the input when that is slower; `first`: the network's first layer, which reads
    input_pixels_per_beat pixels per beat.  numpy-friendly."""
    geo = matrix_geometry(layer)
    _, ih, iw = (int(v) for v in layer["input"]["shape"])
    return np.maximum(_window_walk(geo, pe, simd), ih * iw * geo.simd_dim / input_lanes(layer, pe, simd, first))


def input_lanes(layer: dict, pe, simd, first: bool = False):
    """Elements per beat of a compute layer's input stream (the one definition: cost model, stage
    chain, RTL generator): SIMD for a dense, IC (or SIMD < IC) per pixel for a conv, times
    input_pixels_per_beat for the network's first layer.  numpy-friendly."""
    lanes = matrix_geometry(layer).in_lanes(simd)
    return lanes * input_pixels_per_beat(layer, pe, simd) if first else lanes


def _window_walk(geo: MatrixGeometry, pe, simd):
    """Cycles of a compute layer's (PE, SIMD)-folded matrix-vector walk over its positions."""
    return geo.positions * (geo.mh / np.asarray(pe, dtype=float)) * (geo.mw / np.asarray(simd, dtype=float))


def check_kind(layer: dict) -> str:
    kind = layer.get("kind")
    if kind not in KNOWN_KINDS:
        raise UserError(f"layer {layer.get('name')!r} has unsupported kind {kind!r}; use one of {', '.join(KNOWN_KINDS)}")
    return kind


def matrix_geometry(layer: dict) -> MatrixGeometry:
    kind = check_kind(layer)
    x_bits = int(layer["input"]["bits"])
    w_bits = int(layer.get("w_bits", 8))
    act = layer.get("act")
    acc_bits = int(layer.get("acc_bits") or (w_bits + x_bits + 16))
    out_bits = int(act["bits"]) if act else acc_bits
    if kind == "dense":
        mw = int(layer.get("in_features") or prod(layer["input"]["shape"]))
        mh = int(layer.get("out_features") or prod(layer["output"]["shape"]))
        return MatrixGeometry(mw, mh, mw, 1, x_bits, w_bits, acc_bits, out_bits)
    if kind == "conv2d":
        kh, kw = (int(v) for v in layer["kernel"])
        ic = int(layer.get("in_channels") or layer["input"]["shape"][0])
        oc = int(layer.get("out_channels") or layer["output"]["shape"][0])
        oh, ow = (int(v) for v in layer["output"]["shape"][1:3])
        return MatrixGeometry(kh * kw * ic, oc, ic, oh * ow, x_bits, w_bits, acc_bits, out_bits)
    raise ValueError(f"{kind} is not a compute layer")


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def folding_of(layer: dict, override: dict | None = None) -> tuple[int, int]:
    """(pe, simd) of a compute layer: override[name] wins over the IR's folding."""
    fold = (override or {}).get(layer["name"]) or layer.get("folding") or {}
    pe, simd = int(fold.get("pe", 1)), int(fold.get("simd", 1))
    geo = matrix_geometry(layer)
    if geo.mh % pe or simd not in geo.simds:
        raise UserError(f"layer {layer['name']!r}: folding pe={pe}, simd={simd}: pe must divide {geo.mh} outputs, "
                        f"simd be one of {', '.join(map(str, geo.simds))}")
    return pe, simd


def elements(spec: dict) -> int:
    return int(prod(spec["shape"]))
