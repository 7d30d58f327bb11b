"""Sample slots of the open RTL's exit path and next-stage input (codesign/rtl.py's structure).

Measured in Verilator (docs/hw_models.md, "What Verilator showed"): the
conditional buffer consumes a sample's exit decision only when the sample
leaves (dropped, or its last beat forwarded).  Without a FIFO on the decision
path a continuing sample that waits at the buffer's head stalled the exit
head, then the split, then stage k, after ~3 samples (the buffer acted as
min(depth, 3)).  The generator now puts a decision FIFO of depth + 1 entries
between the exit decision and the buffer, so the exit path holds more
decisions than the buffer holds samples and the buffer acts with its full
depth.  On the other side, stage k+1's first MVU has an input FIFO of one
whole sample, so a continuing head leaves the buffer one sample ahead of
stage k+1.
"""
from __future__ import annotations

from .geometry import COMPUTE_KINDS, folding_of, matrix_geometry

THRESHOLD_UNIT_SAMPLES = 2  # one result waiting at the decision + the next sample being scanned
DECISION_FIFO_SLACK = 1     # codesign/rtl.py: decision FIFO of depth + 1 (a sample may still be entering)


def decision_capacity(stage: dict, num_classes: int, folding: dict | None = None, depth: int | None = None) -> int:
    """Samples written past a continuing head that waits at the buffer, before stage k stalls.

    The decision FIFO (depth + 1) + the threshold unit (2: a result waiting + the next sample)
    + 1 per compute layer of the exit head: always more than the buffer's `depth` (default:
    the stage's buffer_depth), so min(depth, capacity) = depth.  Before the FIFO the capacity
    was the last two terms alone, fitted to Verilator replays (3 for one-layer heads).
    """
    _ = num_classes
    depth = int(depth if depth is not None else (stage.get("buffer_depth") or 2))
    head = [l for l in stage.get("head", []) if l["kind"] in COMPUTE_KINDS]
    return depth + DECISION_FIFO_SLACK + THRESHOLD_UNIT_SAMPLES + len(head)


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


def boundary_slots(design: dict, folding: dict | None = None,
                   depths=None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(decision capacity per boundary, input queue of the stage after each boundary);
    `depths`: buffer depths per boundary overriding the stages' buffer_depth."""
    stages = design.get("stages") or []
    n_classes = int(design.get("num_classes", 10))
    given = list(depths) if depths is not None else [None] * max(len(stages) - 1, 0)
    caps = tuple(decision_capacity(s, n_classes, folding, d) for s, d in zip(stages[:-1], given))
    queues = tuple(input_queue(s, folding) for s in stages[1:])
    return caps, queues
