"""Sample slots of the open RTL's exit path and next-stage input (codesign/rtl/'s structure).

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

from stage_ir import Design, MatrixLayer, Stage

from .decisions import decision_fifo_depth
from .geometry import compute_layers, folding_of

THRESHOLD_UNIT_SAMPLES = 2  # one result waiting at the decision + the next sample being scanned


def decision_capacity(stage: Stage, num_classes: int, folding: dict | None = None, depth: int | None = None) -> int:
    """Samples written past a continuing head that waits at the buffer, before stage k stalls.

    The decision FIFO (the stage's decision_fifo_depth as decided; by its rule, depth + 1, for
    a buffer `depth` given or a design not yet decided) + the threshold unit (2: a result
    waiting + the next sample) + 1 per compute layer of the exit head: always more than the
    buffer's depth, so min(depth, capacity) = depth.  Before the FIFO the capacity was the last
    two terms alone, fitted to Verilator replays (3 for one-layer heads).
    """
    _ = num_classes
    if depth is None and stage.hardware is not None:
        fifo = int(stage.hardware.decision_fifo_depth)
    else:
        fifo = decision_fifo_depth(depth if depth is not None else stage.buffer_depth)
    return fifo + THRESHOLD_UNIT_SAMPLES + len(compute_layers(stage.head))


def input_queue(stage: Stage, folding: dict | None = None) -> int:
    """Whole samples stage k+1 takes from the buffer before its first block starts them (its first
    compute layer's kind decides: an MVU's input FIFO, a conv's line buffer)."""
    first = _first_compute(stage)
    if first is None:
        return 0
    return first.input_queue(folding_of(first, folding)[0])


def drain_fraction(stage: Stage, folding: dict | None = None) -> float:
    """Share of stage k+1's II from taking a continuing sample to reading its last beat out of
    buffer k (the slot is held until then; flow_sim's `slots` rule, BufferTiming.drain): its
    first compute layer's kind decides (MatrixLayer.drain_fraction)."""
    first = _first_compute(stage)
    if first is None:
        return 0.0
    return first.drain_fraction(folding_of(first, folding)[0])


def write_span(stage: Stage, ii: float, beats: int, folding: dict | None = None) -> float:
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
    span = last.write_span(ii, *folding_of(last, folding))
    return float(max(span, beats - 1, 0))


def decision_latency(stage: Stage, head_latency: float, head_cycles: dict[str, float], span: float,
                     folding: dict | None = None) -> float:
    """Cycles from a sample's last beat into buffer k to its decision there.

    `head_latency` sums the exit head's blocks in an empty pipeline from the split; the head's
    first compute layer overlaps the write: it works while the beats arrive, `span` cycles,
    except its work after the last input (a dense's remaining output folds; a conv's last
    output row).  Digits MLP head (MW 64, SIMD 2, PE 5 of 10, threshold unit 23): 91 summed,
    59 here, 60 in Verilator.  `head_cycles`: cycles per sample of each head layer by name."""
    first = next(iter(compute_layers(stage.head)), None)
    if first is None:
        return float(head_latency)
    pe, simd = folding_of(first, folding)
    fold, folds = first.fold_cycles(pe, simd)
    cycles = float(head_cycles.get(first.name, fold * folds))
    after_input = first.folds_after_input(pe, simd) * fold
    return float(head_latency - max(min(span, cycles - after_input), 0.0))


def read_cycles(beats: int) -> float:
    """Cycles from stage k+1 taking a continuing sample to its last beat leaving buffer k: the
    meta beat, then one beat per cycle (Verilator, digits MLP, 64 beats: taken at 126, last
    beat out at 191, the next sample's first beat in at 192)."""
    return float(beats + 1)


def _last_compute(stage: Stage) -> MatrixLayer | None:
    return next(reversed(compute_layers(stage.layers)), None)


def _first_compute(stage: Stage) -> MatrixLayer | None:
    return next(iter(compute_layers(stage.layers)), None)


def boundary_slots(design: Design, folding: dict | None = None,
                   depths=None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(decision capacity per boundary, input queue of the stage after each boundary);
    `depths`: buffer depths per boundary overriding the stages' buffer_depth."""
    stages = design.stages
    given = list(depths) if depths is not None else [None] * max(len(stages) - 1, 0)
    caps = tuple(decision_capacity(s, design.num_classes, folding, d) for s, d in zip(stages[:-1], given))
    queues = tuple(input_queue(s, folding) for s in stages[1:])
    return caps, queues
