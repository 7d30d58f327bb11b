"""Sample slots of the open RTL's exit path and next-stage input (codesign/rtl.py's structure).

Measured in Verilator (docs/hw_models.md, "What Verilator showed"): the
conditional buffer consumes a sample's exit decision only when the sample
leaves (dropped, or its last beat forwarded), and the decision path has no
FIFO of its own, so a continuing sample that waits at the buffer's head
stalls the exit head, then the split, then stage k, after a few samples: the
buffer acts as one of min(depth, decision capacity) samples.  On the other
side, stage k+1's first MVU has an input FIFO of one whole sample, so a
continuing head leaves the buffer one sample ahead of stage k+1.
"""
from __future__ import annotations

from .geometry import COMPUTE_KINDS, folding_of, matrix_geometry

THRESHOLD_UNIT_SAMPLES = 2  # one result waiting at the decision + the next sample being scanned


def decision_capacity(stage: dict, num_classes: int, folding: dict | None = None) -> int:
    """Samples written past a continuing head that waits at the buffer, before stage k stalls.

    Fitted to Verilator (replays of the exact exit sequences, docs/hw_models.md): 2 (the
    threshold unit: a result waiting at the buffer + the next sample scanned) + 1 per compute
    layer of the exit head.  Counting every FIFO slot of the head path (its input FIFO, the
    logits width converter) over-counts: the head's FIFOs and stage k's own input FIFOs let the
    RTL run a little ahead at the start of a stall, which the model's stage-as-one-server rule
    already absorbs.  Designs A (II 40 | 1024, head PE 1 SIMD 16) and B (II 64 | 256, head
    PE 5 SIMD 2): replay within 0.2 % with 3, 0.4-2.3 % fast with 4-5.
    """
    _ = num_classes
    head = [l for l in stage.get("head", []) if l["kind"] in COMPUTE_KINDS]
    return THRESHOLD_UNIT_SAMPLES + len(head)


def input_queue(stage: dict, folding: dict | None = None) -> int:
    """Whole samples stage k+1 takes from the buffer before its first block starts them."""
    first = next((l for l in stage.get("layers", []) if l["kind"] in COMPUTE_KINDS), None)
    if first is None:
        return 0
    if first["kind"] == "conv2d":
        # cs_swu keeps BUF_ROWS = 2 KH + SH - 1 input rows: while the last window rows of a sample
        # (KH - 1 of them) are still in use, the rest take the next sample; a whole next image fits
        # when IH rows do (Verilator, digits CNN 8x4x4 input: behaves as a one-sample queue)
        kh, _ = first["kernel"]
        sh = (first.get("stride") or [1, 1])[0]
        ih = first["input"]["shape"][1]
        return int(2 * kh + sh - 1 - (kh - 1) >= ih)
    pe, _ = folding_of(first, folding)
    return int(matrix_geometry(first).mh > pe)


def boundary_slots(design: dict, folding: dict | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(decision capacity per boundary, input queue of the stage after each boundary)."""
    stages = design.get("stages") or []
    n_classes = int(design.get("num_classes", 10))
    caps = tuple(decision_capacity(s, n_classes, folding) for s in stages[:-1])
    queues = tuple(input_queue(s, folding) for s in stages[1:])
    return caps, queues
