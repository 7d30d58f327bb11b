"""Walk the typed stage IR (stage_ir.Design) into per-stage, per-block costs."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stage_ir import Cost, Design, LayerKind, Stage, StageHardware
from stage_ir.errors import UserError

from . import decisions, hls_cost, rtl_cost
from .geometry import folding_of

TAG_BITS = 16  # sample tag carried with every sample (DESIGN.md: tag = index)
DECISION_BITS = TAG_BITS + 8  # a decision beat: {patience state, force_idx, force_en, tag, exited}
BACKENDS = ("rtl", "hls")


@dataclass
class Block:
    name: str
    kind: str          # IR kind, or split / threshold_unit / conditional_buffer / dwc / exit_merge
    part: str          # backbone | head | ee
    cost: Cost
    paces: bool = False  # a layer whose cycles pace its stage (its kind's `paces`)


@dataclass
class StageCost:
    index: int
    blocks: list[Block] = field(default_factory=list)
    backbone_latency: float = 0.0
    head_latency: float = 0.0          # split to decision (or to the final class)
    boundary_latency: float = 0.0      # split + conditional buffer for a continuing sample
    parallel_threshold: bool = False   # RTL: the pipelined threshold unit (rtl_cost.threshold_parallel)
    buffer_beats: int = 0              # RTL: beats of one sample into conditional buffer k (features / lanes)

    @property
    def ii(self) -> float:
        """Cycles per sample of the stage: its slowest block (head runs beside the buffer)."""
        return float(max([float(np.max(b.cost.cycles)) for b in self.blocks] + [1.0]))

    def total(self) -> dict[str, float]:
        keys = ("lut", "ff", "dsp", "bram")
        return {k: float(sum(float(b.cost.resources()[k]) for b in self.blocks)) for k in keys}


def merge_result_bits(num_classes: int) -> int:
    """Bits of one result the exit merge passes on: the sample's tag, its class and exit index."""
    return TAG_BITS + int(np.ceil(np.log2(max(num_classes, 2)))) + 4


def stage_costs(design: Design, backend: str = "rtl", folding: dict | None = None,
                buffer_depths: list[int] | None = None, strategy: str = "latency",
                decision_latency: list[float] | None = None) -> list[StageCost]:
    """Per-stage blocks and costs.  ``folding``: {layer name: {pe, simd} or {reuse_factor}}.

    RTL: a decided design (stage_ir.Design.decided) is costed with the decisions it holds; with
    `folding` or `buffer_depths` given, or before the design is decided, with the decisions' rules
    (decisions.draft: what `decide` would write)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown back end {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "rtl" and (folding is not None or buffer_depths is not None or not design.decided):
        design, folding, buffer_depths = decisions.draft(design, folding, buffer_depths), None, None
    return _costs(design, backend, folding, buffer_depths, strategy, decision_latency)


def decide(design: Design, folding: dict | None = None, buffer_depths: list[int] | None = None) -> Design:
    """`design` (a copy) with `folding`, `buffer_depths` and every hardware decision written in,
    each by its rule (hw_models.decisions): what the DSE chose, or the defaults when none ran."""
    drafted = decisions.draft(design, folding, buffer_depths)
    costs = _costs(drafted, "rtl", None, None, "latency", None)
    last = len(drafted.stages) - 1
    stages = [st.model_copy(update={"hardware": StageHardware(
        threshold_form=decisions.threshold_form(sc.parallel_threshold),
        decision_fifo_depth=None if k == last else decisions.decision_fifo_depth(_depth(st, k, None)))})
        for k, (st, sc) in enumerate(zip(drafted.stages, costs))]
    return drafted.model_copy(update={"stages": stages})


def _costs(design: Design, backend: str, folding: dict | None, buffer_depths: list[int] | None, strategy: str,
           decision_latency: list[float] | None) -> list[StageCost]:
    stages = design.stages
    n_classes = design.num_classes
    out = []
    lanes = None
    for k, stage in enumerate(stages):
        last = k == len(stages) - 1
        sc = StageCost(index=k)
        lanes, lat = _chain(stage.layers, "backbone", backend, folding, strategy, lanes, sc.blocks)
        sc.backbone_latency = lat
        feats = features_of(stage)
        if not last and backend == "rtl":
            sc.blocks.append(Block(f"s{k}_split", "split", "ee", rtl_cost.split(feats.size, feats.bits, lanes or 1)))
        _, head_lat = _chain(stage.head, "head", backend, folding, strategy, lanes, sc.blocks)
        # the stage's compute layers set its pace; the threshold unit's form follows (one rule, rtl_cost)
        compute_ii = max([float(np.max(b.cost.cycles)) for b in sc.blocks if b.paces] + [1.0])
        kind, table = design.exit_unit(k)
        if stage.hardware is not None:  # decided: as written
            sc.parallel_threshold = backend == "rtl" and stage.hardware.threshold_form == "pipelined"
        else:
            sc.parallel_threshold = backend == "rtl" and bool(rtl_cost.threshold_parallel(kind, n_classes, compute_ii))
        if not last or backend == "rtl":  # the final exit's unit (the argmax) is the RTL's only
            thr = rtl_cost.threshold_unit(kind, n_classes, stage.logits.bits, _out_lanes(stage.head[-1], backend, folding),
                                          table, parallel=sc.parallel_threshold)
            sc.blocks.append(Block(f"s{k}_threshold", "threshold_unit", "ee", thr))
            head_lat += float(thr.latency)
        if not last:
            depth = _depth(stage, k, buffer_depths)
            bits = feats.bits
            # the RTL's buffer holds `depth` samples, decided or not (docs/hw_models.md)
            sample_bits = feats.size * bits  # the tag travels with the decision, not in the buffer
            buf = rtl_cost.conditional_buffer(depth, sample_bits, (lanes or 1) * bits, decision_bits=DECISION_BITS)
            sc.blocks.append(Block(f"s{k}_cond_buffer", "conditional_buffer", "ee", buf))
            sc.buffer_beats = feats.size // (lanes or 1)  # codesign/rtl/: features / lanes
            d = head_lat if decision_latency is None else float(decision_latency[k])
            sc.boundary_latency = 1.0 + max(float(buf.latency), d)
        sc.head_latency = head_lat
        if last:
            merge = rtl_cost.exit_merge(len(stages), merge_result_bits(n_classes))
            sc.blocks.append(Block("exit_merge", "exit_merge", "ee", merge))
            sc.head_latency += float(merge.latency)
        out.append(sc)
    return out


def features_of(stage: Stage):
    """The stage's feature map (what its conditional buffer holds): its features, or the output of
    its backbone in the last stage, which has none."""
    return stage.features or (stage.layers[-1].output if stage.layers else stage.input)


def _depth(stage: Stage, k: int, buffer_depths: list[int] | None) -> int:
    depth = buffer_depths[k] if buffer_depths is not None else stage.buffer_depth
    if int(depth) < 1:
        raise UserError(f"stage {k}: buffer depth {depth} must be at least 1 sample")
    return int(depth)


def _out_lanes(layer: LayerKind, backend: str, folding: dict | None) -> int:
    if backend == "rtl" and layer.computes:
        return folding_of(layer, folding)[0]
    return 1


def _chain(layers: list[LayerKind], part: str, backend: str, folding: dict | None, strategy: str,
           lanes: int | None, blocks: list[Block]) -> tuple[int | None, float]:
    """Cost one chain of layers, inserting width converters; returns (out lanes, latency)."""
    latency = 0.0
    for layer in layers:
        if backend == "hls":
            rf = ((folding or {}).get(layer.name, {}).get("reuse_factor")
                  or (layer.reuse_factor if layer.computes else None) or 1)
            cost = hls_cost.layer_cost(layer, rf, strategy)
        elif layer.computes:
            pe, simd = folding_of(layer, folding)
            # a conv with SIMD = KP*IC still takes IC elements per beat (cs_swu parallel window),
            # times its pixels per beat (above 1 on the network's first layer only: the IR's check)
            ipb = layer.folding.pixels_per_beat
            in_lanes = int(layer.in_lanes(pe, simd, ipb))
            if lanes is not None and lanes != in_lanes:
                dwc = rtl_cost.width_converter(layer.input.size, layer.input.bits, lanes, in_lanes)
                blocks.append(Block(f"{layer.name}_dwc", "dwc", part, dwc))
                latency += float(dwc.latency)
            cost = rtl_cost.layer_cost(layer, pe, simd, ipb=ipb)
            lanes = pe
        else:
            cost = rtl_cost.layer_cost(layer, lanes=lanes or 1)
        blocks.append(Block(layer.name, layer.kind, part, cost, paces=layer.paces))
        latency += float(cost.latency)
    return lanes, latency
