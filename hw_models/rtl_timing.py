"""Sample slots of the open RTL's exit path and next-stage input (codesign/rtl.py's structure).

Measured in Verilator (docs/hw_models.md, "What Verilator showed"): the old
in-order conditional buffer consumed a decision only when its sample left, so
the exit path capped it at min(depth, 3) samples until the generator put a
decision FIFO of depth + 1 entries in front of it.  Today's slot buffer takes
a decision once its sample is completely written, so that cap no longer
binds (the FIFO stays: a decision may arrive while its sample is still
entering).  On the other side, stage k+1's first MVU has an input FIFO of one
whole sample, so a continuing head leaves the buffer one sample ahead of
stage k+1, and a conv's line buffer decides how long the slot stays held
(`drain_fraction`).
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
    first = _first_compute(stage)
    if first is None:
        return 0
    if first["kind"] == "conv2d":
        # while the last window rows of a sample (KH - 1 of them) are still in use, the rest of
        # cs_swu's rows take the next sample; a whole next image fits when IH rows do (Verilator,
        # digits CNN 8x4x4 input: behaves as a one-sample queue)
        kh, ih = first["kernel"][0], first["input"]["shape"][1]
        return int(_swu_rows(first) - (kh - 1) >= ih)
    return int(_multi_fold(first, folding))


def drain_fraction(stage: dict, folding: dict | None = None) -> float:
    """Share of stage k+1's II from taking a continuing sample to reading its last beat out of
    buffer k (the slot is held until then; flow_sim's `slots` rule, BufferTiming.drain).

    A conv's cs_swu holds BUF_ROWS = 2 KH + SH - 1 input rows: the rest enter as finished output
    rows release theirs (B-LeNet conv2, 12 rows, 8 output rows: after 2 of them, 1/4 of the II).
    A dense with more than one output fold has an input FIFO of one sample (no wait); with one
    fold it reads its input at its own pace, the whole II."""
    first = _first_compute(stage)
    if first is None:
        return 0.0
    if first["kind"] == "conv2d":
        sh = (first.get("stride") or [1, 1])[0]
        ph = (first.get("padding") or [0, 0])[0]
        ih, oh = first["input"]["shape"][1], first["output"]["shape"][1]
        last_row = ih - 1 - _swu_rows(first)  # the last input row that waits for a release
        return 0.0 if last_row < 0 else min(1.0, -(-(last_row + ph + 1) // sh) / oh)
    return 0.0 if _multi_fold(first, folding) else 1.0


def _fold_cycles(layer: dict, folding: dict | None) -> tuple[float, int]:
    """(cycles of one output fold at one position, output folds per sample) of a compute layer."""
    pe, simd = folding_of(layer, folding)
    geo = matrix_geometry(layer)
    return geo.mw / simd, geo.positions * -(-geo.mh // pe)


def write_span(stage: dict, ii: float, beats: int, folding: dict | None = None) -> float:
    """Cycles from a sample's first beat into conditional buffer k to its last (flow_sim's
    `write_span`): cs_cond_buffer takes the slot with the first beat, and a stall there holds
    the stage's last block, whose remaining beats follow once a slot is free.

    A dense emits PE outputs per fold, one fold every MW/SIMD cycles after its input is in:
    (folds - 1) folds (digits MLP PE 1: 63 cycles, Verilator: first beat 3, last 66).  A conv
    (and a pool after it) emits as its window walk advances, over the stage's II less the
    first output row.  At least beats - 1: the buffer takes one beat per cycle."""
    last = _last_compute(stage)
    if last is None:
        return float(max(beats - 1, 0))
    fold, folds = _fold_cycles(last, folding)
    if last["kind"] == "conv2d":
        oh = int(last["output"]["shape"][1])
        span = ii * (oh - 1) / oh
    else:
        span = (folds - 1) * fold
    return float(max(span, beats - 1, 0))


def decision_latency(stage: dict, head_latency: float, head_cycles: dict[str, float], span: float,
                     folding: dict | None = None) -> float:
    """Cycles from a sample's last beat into buffer k to its decision there.

    `head_latency` sums the exit head's blocks in an empty pipeline from the split; the head's
    first compute layer overlaps the write: it works while the beats arrive, `span` cycles,
    except its work after the last input (a dense's remaining output folds; a conv's last
    output row).  Digits MLP head (MW 64, SIMD 2, PE 5 of 10, threshold unit 23): 91 summed,
    59 here, 60 in Verilator.  `head_cycles`: cycles per sample of each head layer by name."""
    first = next((l for l in stage.get("head", []) if l["kind"] in COMPUTE_KINDS), None)
    if first is None:
        return float(head_latency)
    fold, folds = _fold_cycles(first, folding)
    cycles = float(head_cycles.get(first["name"], fold * folds))
    folds_left = folds // int(first["output"]["shape"][1]) if first["kind"] == "conv2d" else folds - 1
    after_input = folds_left * fold
    return float(head_latency - max(min(span, cycles - after_input), 0.0))


def read_cycles(beats: int) -> float:
    """Cycles from stage k+1 taking a continuing sample to its last beat leaving buffer k: the
    meta beat, then one beat per cycle (Verilator, digits MLP, 64 beats: taken at 126, last
    beat out at 191, the next sample's first beat in at 192)."""
    return float(beats + 1)


def _last_compute(stage: dict) -> dict | None:
    return next((l for l in reversed(stage.get("layers", [])) if l["kind"] in COMPUTE_KINDS), None)


def _first_compute(stage: dict) -> dict | None:
    return next((l for l in stage.get("layers", []) if l["kind"] in COMPUTE_KINDS), None)


def _swu_rows(conv: dict) -> int:
    """cs_swu's line buffer: BUF_ROWS = 2 KH + SH - 1 input rows."""
    return 2 * conv["kernel"][0] + (conv.get("stride") or [1, 1])[0] - 1


def _multi_fold(layer: dict, folding: dict | None) -> bool:
    """More than one output fold: the MVU has an input FIFO of one whole sample (codesign/rtl.py)."""
    pe, _ = folding_of(layer, folding)
    return matrix_geometry(layer).mh > pe


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
