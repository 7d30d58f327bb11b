"""The hardware decisions a design.json holds beside its folding, and the rules that make them.

The DSE (or, when no DSE ran, the defaults) decides; `stages.decide` writes the decisions into the
stage IR; the RTL generator and the cost model read them from there and never recompute them:
a layer's input pixels per beat (Folding.pixels_per_beat), each exit's threshold-unit form and
decision FIFO depth (Stage.hardware).  While the DSE explores foldings and buffer depths it costs
each candidate with these same rules (`draft`).
"""
from __future__ import annotations

from typing import Sequence

from stage_ir import Cost, Design, Folding, LayerKind

from . import rtl_cost
from .geometry import folding_of, input_layer_name

# the decision FIFO in front of conditional buffer k holds buffer_depth + 1 decisions: a decision
# may arrive while its sample is still entering the buffer (docs/hw_models.md "Decision capacity")
DECISION_FIFO_SLACK = 1


def decision_fifo_depth(buffer_depth: int) -> int:
    return int(buffer_depth) + DECISION_FIFO_SLACK


def input_pixels_per_beat(layer: LayerKind, pe, simd, first: bool):
    """Input pixels per beat of a compute layer at (pe, simd): the kind's rule for the network's
    first layer (s_axis feeds it), one for every other.  numpy-friendly."""
    return layer.pixels_per_beat(pe, simd) if first else 1


def candidate_cost(layer: LayerKind, pe, simd, first: bool) -> Cost:
    """RTL cost of a compute layer at a candidate folding, reading the pixels per beat the rule
    would decide for it.  numpy-broadcastable."""
    return rtl_cost.layer_cost(layer, pe, simd, ipb=input_pixels_per_beat(layer, pe, simd, first))


def threshold_form(parallel: bool) -> str:
    return "pipelined" if parallel else "sequential"


def draft(design: Design, folding: dict | None = None, buffer_depths: Sequence[int] | None = None) -> Design:
    """`design` with `folding` ({layer: {pe, simd}}) and `buffer_depths` (per early exit) written in,
    each compute layer's pixels per beat by its rule, and no stage decisions yet (the cost model
    applies their rules to a stage without them).  A copy: `design` is unchanged."""
    first = input_layer_name(design.stages)
    last = len(design.stages) - 1
    stages = []
    for k, st in enumerate(design.stages):
        update: dict = {key: [_folded(layer, folding, layer.name == first) for layer in getattr(st, key)]
                        for key in ("layers", "head")}
        update["hardware"] = None
        if buffer_depths is not None and k < last:
            update["buffer_depth"] = int(buffer_depths[k])
        stages.append(st.model_copy(update=update))
    return design.model_copy(update={"stages": stages})


def _folded(layer: LayerKind, folding: dict | None, first: bool) -> LayerKind:
    if not layer.computes:
        return layer
    pe, simd = folding_of(layer, folding)
    fold = Folding(pe=pe, simd=simd, pixels_per_beat=int(input_pixels_per_beat(layer, pe, simd, first)))
    return layer if fold == layer.folding else layer.model_copy(update={"folding": fold})
