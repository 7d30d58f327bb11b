"""Foldings and the network's first layer, read from the typed stage IR (stage_ir)."""
from __future__ import annotations

from stage_ir import LayerKind, MatrixLayer, Stage
from stage_ir.design import input_layer


def input_layer_name(stages: list[Stage]) -> str | None:
    """The name of the layer the top's s_axis feeds (stage_ir.design.input_layer; codesign.rtl sizes
    s_axis from it)."""
    layer = input_layer(stages)
    return None if layer is None else layer.name


def folding_of(layer: MatrixLayer, override: dict | None = None) -> tuple[int, int]:
    """(pe, simd) of a compute layer: override[name] ({pe, simd}) wins over the IR's folding."""
    fold = (override or {}).get(layer.name)
    pe, simd = (int(fold.get("pe", 1)), int(fold.get("simd", 1))) if fold else (layer.folding.pe, layer.folding.simd)
    return layer.check_folding(pe, simd)


def compute_layers(layers: list[LayerKind]) -> list[MatrixLayer]:
    return [layer for layer in layers if layer.computes]
