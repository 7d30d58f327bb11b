"""The integer reference: executes design.json exactly, numpy only.

Torch (Brevitas), QONNX execution, HLS C simulation and RTL simulation must
all equal it bit for bit; see docs/ir.md for the arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from stage_ir import policies as pol
from stage_ir import Design


def run_layer(design: Design, layer, x: np.ndarray) -> np.ndarray:
    """One layer's integer semantics (its kind's `reference`, stage_ir.kinds)."""
    return layer.reference(x, design.array)


def run_layers(design: Design, layers: list, x: np.ndarray) -> np.ndarray:
    for layer in layers:
        x = run_layer(design, layer, x)
    return x


@dataclass
class StageOutput:
    features: np.ndarray | None  # int64, the next stage's input (None in the last stage)
    logits: np.ndarray  # int64 [N, classes]


def run_stage(design: Design, k: int, x: np.ndarray) -> StageOutput:
    stage = design.stages[k]
    feats = run_layers(design, stage.layers, x.astype(np.int64))
    logits = run_layers(design, stage.head, feats)
    return StageOutput(None if stage.features is None else feats, logits)


def run_design(design: Design, x: np.ndarray, batch: int = 2048) -> list[np.ndarray]:
    """Every exit's integer logits for integer inputs x [N, *input.shape] (all samples through all stages)."""
    outs: list[list[np.ndarray]] = [[] for _ in design.stages]
    for start in range(0, len(x), batch):
        h = x[start:start + batch].astype(np.int64)
        for k in range(design.num_exits):
            res = run_stage(design, k, h)
            outs[k].append(res.logits)
            h = res.features
    return [np.concatenate(o) for o in outs]


def design_view(design: Design, x: np.ndarray, thresholds: Sequence[int] | None = None):
    """(logits per exit, integer view of the exit decisions) of the design on x: what every back end must produce.

    A design with one exit (no early exit, no policy) sends every sample to its final classifier."""
    logits = run_design(design, x)
    if design.num_exits == 1:
        classes = np.argmax(logits[0], axis=1)[None, :]
        scores = pol.IntegerScores(pol.ARGMAX, classes, np.zeros((0, len(x)), dtype=np.int64), None)
        return logits, pol.IntegerView(scores, np.zeros((0, len(x)), dtype=bool), np.zeros(len(x), dtype=np.int64),
                                       classes[0])
    thr = design.policy.thresholds if thresholds is None else thresholds
    return logits, pol.integer_view(design.policy.kind, logits, design.policy.tables, thr)
