"""Per-layer cost of the HLS back end (hls4ml, Vitis HLS, io_stream).

NOT checked against vendor synthesis: Vivado/Vitis is not part of this
toolchain.  Outputs carry ``checked_against_synthesis: False``.
Structure follows hls4ml: a dense layer instantiates MW*MH/RF multipliers
and starts a new input every RF cycles; a conv repeats that per output pixel.
"""
from __future__ import annotations

import numpy as np

from .coefficients import coefficients
from .cost import Cost, memory_bram18
from .geometry import MatrixGeometry, elements, matrix_geometry

CHECKED_AGAINST_SYNTHESIS = False
STRATEGIES = ("latency", "resource")


def _hls(coef: dict | None) -> dict:
    return coef if coef is not None else coefficients()["hls"]


def legal_reuse_factors(geo: MatrixGeometry) -> list[int]:
    """hls4ml accepts RFs that divide MW*MH (its valid-RF rule, simplified)."""
    n = geo.mw * geo.mh
    return [r for r in range(1, min(n, 4096) + 1) if n % r == 0]


def matmul(geo: MatrixGeometry, reuse_factor, strategy: str = "latency", coef: dict | None = None) -> Cost:
    c = _hls(coef)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r} not in {STRATEGIES}")
    rf = np.asarray(reuse_factor, dtype=float)
    n_mult = np.ceil(geo.mw * geo.mh / rf)
    product_bits = geo.w_bits + geo.x_bits
    on_dsp = product_bits >= c["dsp_min_product_bits"]
    dsp = n_mult if on_dsp else np.zeros_like(n_mult)
    mult_lut = 0.0 if on_dsp else n_mult * c["lut_per_mult_bit2"] * geo.w_bits * geo.x_bits
    adder_lut = n_mult * (product_bits + np.log2(geo.mw)) * c["lut_per_adder_bit"]
    weight_bits = geo.mw * geo.mh * geo.w_bits
    use_bram = (strategy == "resource") & (rf >= c["resource_bram_min_rf"])
    bram = np.where(use_bram, memory_bram18(n_mult * geo.w_bits, weight_bits, {"memory": coefficients()["rtl"]["memory"]}), 0.0)
    ii = geo.positions * rf
    latency = ii + np.ceil(np.log2(geo.mw)) + c["latency_overhead"]
    return Cost(cycles=ii, latency=latency, lut=c["base_lut"] + mult_lut + adder_lut,
                ff=c["base_ff"] + n_mult * c["ff_per_mult"], dsp=dsp, bram18=bram)


def dense(layer: dict, reuse_factor=1, strategy: str = "latency", coef: dict | None = None) -> Cost:
    return matmul(matrix_geometry(layer), reuse_factor, strategy, coef)


def conv2d(layer: dict, reuse_factor=1, strategy: str = "latency", coef: dict | None = None) -> Cost:
    return matmul(matrix_geometry(layer), reuse_factor, strategy, coef)


def maxpool2d(layer: dict, coef: dict | None = None) -> Cost:
    c = _hls(coef)
    n = elements(layer["input"])
    ch = layer["input"]["shape"][0]
    bits = int(layer["input"]["bits"])
    cycles = n / ch  # io_stream: one pixel (all channels) per cycle
    return Cost(cycles=cycles, latency=cycles + c["latency_overhead"], lut=ch * bits * 2.0, ff=ch * bits * 2.0)


def flatten(layer: dict, coef: dict | None = None) -> Cost:
    return Cost()


def default_reuse_factor(layer: dict) -> int:
    return int(layer.get("reuse_factor") or 1)


LAYER_MODELS = {"dense": dense, "conv2d": conv2d, "maxpool2d": maxpool2d, "flatten": flatten}
