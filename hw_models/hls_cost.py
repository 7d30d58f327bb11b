"""Per-layer cost of the HLS back end (hls4ml, Vitis HLS, io_stream).

NOT checked against vendor synthesis: Vivado/Vitis is not part of this
toolchain.  Outputs carry ``checked_against_synthesis: False``.
Structure follows hls4ml: a dense layer instantiates MW*MH/RF multipliers
and starts a new input every RF cycles; a conv repeats that per output pixel.
"""
from __future__ import annotations

from stage_ir import Cost, LayerKind

from .coefficients import coefficients

CHECKED_AGAINST_SYNTHESIS = False


def _hls(coef: dict | None) -> dict:
    return coef if coef is not None else coefficients()["hls"]


def layer_cost(layer: LayerKind, reuse_factor=1, strategy: str = "latency", coef: dict | None = None) -> Cost:
    """HLS cost of one IR layer (its kind's model, stage_ir.kinds) at `reuse_factor` (compute layers)."""
    return layer.hls_cost(_hls(coef), coefficients()["rtl"]["memory"], reuse_factor, strategy)
