"""Per-block cost of the open RTL back end (folded streaming, FINN-style).

Every function takes numpy-broadcastable folding so the DSE can cost many
foldings at once.  Structure follows what yosys 0.23 synth_xilinx does
(docs/hw_models.md); the numbers live in coefficients.yaml.
"""
from __future__ import annotations

import numpy as np

from stage_ir import Cost, LayerKind, policies
from stage_ir.cost import bram18_by_shape

from .coefficients import coefficients


def _rtl(coef: dict | None) -> dict:
    return coef if coef is not None else coefficients()["rtl"]


def layer_cost(layer: LayerKind, pe=1, simd=1, lanes=1, ipb=1, coef: dict | None = None) -> Cost:
    """RTL cost of one IR layer (its kind's model, stage_ir.kinds): a compute layer at folding
    (pe, simd) reading `ipb` input pixels per beat (above 1 only as the network's first layer);
    any other layer fed `lanes` elements per beat.  numpy-broadcastable."""
    if layer.computes:
        return layer.rtl_cost(_rtl(coef), pe, simd, ipb)
    return layer.stream_cost(_rtl(coef), lanes)


def width_converter(n_elements: int, bits: int, in_lanes, out_lanes, coef: dict | None = None) -> Cost:
    """Stream width converter between a producer's PE and a consumer's SIMD."""
    d = _rtl(coef)["dwc"]
    in_lanes = np.asarray(in_lanes, dtype=float)
    out_lanes = np.asarray(out_lanes, dtype=float)
    needed = in_lanes != out_lanes
    width = np.maximum(in_lanes, out_lanes) * bits
    cycles = n_elements / np.minimum(in_lanes, out_lanes)
    return Cost(cycles=np.where(needed, cycles, 0.0), latency=np.where(needed, 1.0, 0.0),
                lut=np.where(needed, d["base_lut"] + width * d["lut_per_bit"], 0.0),
                ff=np.where(needed, 2 * width * d["ff_per_bit"], 0.0))


def split(n_elements: int, bits: int, lanes=1, coef: dict | None = None) -> Cost:
    """Duplicates the feature stream to the exit head and the conditional buffer."""
    s = _rtl(coef)["split"]
    width = np.asarray(lanes, dtype=float) * bits
    return Cost(cycles=n_elements / np.asarray(lanes, dtype=float), latency=1.0,
                lut=width * s["lut_per_bit"], ff=width * s["ff_per_bit"])


def threshold_sequential_cycles(policy: str, num_classes: int) -> int:
    """Cycles per sample of the sequential cs_threshold_unit (Verilator-exact): one logit per
    cycle plus one, once per pass of the policy over the logits (two for the softmax ones)."""
    return policies.get(policy).passes * int(num_classes) + 1


def threshold_pipe_latency(policy: str, num_classes: int) -> int:
    """Input handshake to result of cs_threshold_pipe: input register, clog2(C) argmax-tree levels,
    the policy's stages after the tree (2 max_softmax, 4 entropy), output register
    (tests/test_rtl_threshold.py)."""
    levels = max(1, int(np.ceil(np.log2(max(int(num_classes), 2)))))
    return 2 + levels + policies.get(policy).pipe_stages


def threshold_parallel(policy: str, num_classes: int, stage_ii) -> np.ndarray:
    """THE choice of threshold-unit form (stages.py, the DSE and codesign/rtl/ all follow it):
    the pipelined cs_threshold_pipe (II = 1, more LUT/FF, entropy: C more DSPs) exactly where the
    sequential unit would be slower than the stage's compute layers, `stage_ii` cycles per sample;
    elsewhere the sequential unit costs less and never bounds the stage."""
    return np.asarray(stage_ii, dtype=float) < threshold_sequential_cycles(policy, num_classes)


def threshold_unit(policy: str, num_classes: int, logit_bits: int, lanes=1,
                   tables: dict | None = None, coef: dict | None = None, parallel: bool = False) -> Cost:
    """Exit-decision unit of one exit (docs/policies.md), per policy kind; `parallel`: the
    pipelined form (threshold_pipe_cost)."""
    if parallel:
        return threshold_pipe_cost(policy, num_classes, logit_bits, tables, coef)
    c = _rtl(coef)
    t = c["threshold"]
    tables = tables or {}  # one exit's table, policies.make_exit_table: {"p", "n", "g", "m", ...}
    cmp_bits = logit_bits * t["cmp_lut_per_bit"]
    lanes = np.asarray(lanes, dtype=float)
    # cs_threshold_unit is sequential: one logit per cycle plus one, whatever the input lanes
    # (Verilator: C+1 cycles per sample, 2C+1 with the second pass of max_softmax / entropy)
    scan = float(num_classes) + 0.0 * lanes
    lut = t["base_lut"] + 3 * cmp_bits               # top1, top2 trackers + threshold compare
    ff = t["base_ff"] + 2 * logit_bits + np.ceil(np.log2(max(num_classes, 2)))
    p = policies.get(policy)
    steps, dsp = p.sequential_extra(t, num_classes, logit_bits, tables, cmp_bits)  # the policy's own logic
    for step_lut, step_ff in steps:
        lut += step_lut
        ff += step_ff
    cycles = p.passes * scan + 1.0
    return Cost(cycles=cycles, latency=cycles + t["pipeline_cycles"], lut=lut, ff=ff, dsp=dsp)


def threshold_pipe_cost(policy: str, num_classes: int, logit_bits: int, tables: dict | None = None,
                        coef: dict | None = None) -> Cost:
    """The exit path with the pipelined cs_threshold_pipe: II = 1, latency threshold_pipe_latency.

    The unit itself (coefficients `threshold_pipe`, yosys 0.23 synth_xilinx of the unit alone,
    C = 10, 16- and 24-bit logits, every policy): an argmax tree of C - 1 nodes (per node and
    logit bit), per-lane logic (exp look-up, entropy's log2 and product), and C + 2 DSP products
    for entropy.  The rest of the exit path (join, split, id/meta FIFOs, exit decide) is what the
    fitted `threshold.base_*` holds beyond the sequential unit alone (`unit_*_in_base`)."""
    c = _rtl(coef)
    t, q = c["threshold"], c["threshold_pipe"]
    p = policies.get(policy)
    n, lb = float(num_classes), float(logit_bits)
    glue_lut = max(t["base_lut"] - q["unit_lut_in_base"], 0.0)
    glue_ff = max(t["base_ff"] - q["unit_ff_in_base"], 0.0)
    lut = glue_lut + q["lut_per_node_bit"][policy] * (n - 1) * lb + q["lut_per_lane"][policy] * n
    ff = glue_ff + q["ff_per_logit_bit"][policy] * n * lb + q["ff_per_lane"][policy] * n
    dsp = p.pipe_dsp(n)
    latency = float(threshold_pipe_latency(policy, num_classes))
    return Cost(cycles=1.0, latency=latency, lut=lut, ff=ff, dsp=dsp)


COND_BUFFER_SLOTS_IN_FLIGHT = 1


def cond_buffer_slots(depth):
    """Sample slots of the RTL's cs_cond_buffer for an IR `buffer_depth` (the system model's
    `depth`: samples decided to continue that the buffer holds).  A slot is taken with a
    sample's first beat and freed when it is dropped or its last beat has left, so one more
    slot holds the sample being written / awaiting its decision (docs/rtl.md).  codesign/rtl/
    and `conditional_buffer` both size the buffer with this function."""
    return depth + COND_BUFFER_SLOTS_IN_FLIGHT


def conditional_buffer(depth, sample_bits: int, width_bits: int, coef: dict | None = None,
                       decision_bits: int = 0) -> Cost:
    """The RTL's cs_cond_buffer for IR buffer depth `depth`: `cond_buffer_slots(depth)` slots of
    one sample's features, plus the decision FIFO of `depth` decisions of `decision_bits` (tag,
    patience state, exited) that feeds it (LUTRAM)."""
    c = _rtl(coef)
    b = c["cond_buffer"]
    depth = np.asarray(depth, dtype=float)
    slots = cond_buffer_slots(depth)
    total = slots * sample_bits
    in_lutram = total <= b["lutram_max_bits"]
    lut = b["base_lut"] + np.where(in_lutram, np.ceil(total / b["lutram_bits_per_lut"]), 0.0)
    lut = lut + depth * decision_bits * b.get("decision_lut_per_bit", 1.0 / b["lutram_bits_per_lut"])
    bram = np.where(in_lutram, 0.0, bram18_by_shape(width_bits, total / width_bits))
    bram = bram + (slots > b.get("queue_lutram_max_depth", 64))  # the forward queue leaves LUTRAM
    # read/write pointers, the output register, and the free-slot bitmap (one FF per slot)
    ff = b["base_ff"] + 2 * np.ceil(np.log2(total / width_bits + 1)) + width_bits + slots
    return Cost(cycles=0.0, latency=float(b["read_latency"]), lut=lut, ff=ff, bram18=bram)


def exit_merge(n_exits: int, result_bits: int, coef: dict | None = None) -> Cost:
    """Round-robin merge of the K result streams (tag, class, exit index).

    LUTs grow with K - 1, not K: yosys 0.23 synth_xilinx of cs_exit_merge alone, 24-bit results:
    45, 102, 147 LUTs for K = 2, 3, 4 (the arbitration folds into every data bit's mux)."""
    m = _rtl(coef)["merge"]
    return Cost(cycles=1.0, latency=1.0, lut=m["base_lut"] + max(n_exits - 1, 0) * result_bits * m["lut_per_input_bit"],
                ff=result_bits * m["ff_per_bit"])
