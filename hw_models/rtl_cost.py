"""Per-block cost of the open RTL back end (folded streaming, FINN-style).

Every function takes numpy-broadcastable folding so the DSE can cost many
foldings at once.  Structure follows what yosys 0.23 synth_xilinx does
(docs/hw_models.md); the numbers live in coefficients.yaml.
"""
from __future__ import annotations

import numpy as np

from .coefficients import coefficients
from .cost import Cost, bram18_by_shape, memory_bram18
from .geometry import MatrixGeometry, conv_cycles, input_lanes, matrix_geometry


def _rtl(coef: dict | None) -> dict:
    return coef if coef is not None else coefficients()["rtl"]


def product_uses_dsp(w_bits: int, x_bits: int, coef: dict | None = None) -> bool:
    """True when yosys synth_xilinx (xc7) maps a w_bits x x_bits product to a DSP.

    Its mul2dsp rule: signed operands of at least 2 bits, within the 25 x 18
    ports, and a product of at least DSP_Y_MINWIDTH = 9 bits.  Activations are
    unsigned, so they enter the signed multiplier one bit wider.
    """
    d = _rtl(coef)["dsp"]
    x_signed = x_bits + 1
    fits = (min(w_bits, x_signed) >= d["min_operand_bits"] and min(w_bits, x_signed) <= d["b_max_bits"]
            and max(w_bits, x_signed) <= d["a_max_bits"])
    return fits and (w_bits + x_signed) >= d["min_product_bits"]


def _storage(bits_per_unit, width_bits, units, coef: dict, words=None) -> tuple[np.ndarray, np.ndarray]:
    """(LUT, BRAM18) of `units` memories of bits_per_unit each (ROM or RAM).

    With ``words`` (a sync-read ROM): yosys 0.23 puts it in block RAM only when it is both large
    and deep (1024 x 16 went to a RAMB18, 256 x 64 and 64 x 256 of the same size to LUTs)."""
    w = coef["weights"]
    bits_per_unit = np.asarray(bits_per_unit, dtype=float)
    in_block = bits_per_unit >= w["block_min_bits"]
    if words is not None:
        in_block = in_block & (np.asarray(words, dtype=float) >= w.get("block_min_words", 0))
    if words is None:
        lut_bits = np.ceil(bits_per_unit / w["rom_bits_per_lut"])
    else:
        # a LUT ROM is a column of LUT6s per word bit: a 32-word ROM of 512-bit words takes 512
        # LUTs, not 32*512/64 (yosys 0.23, 64 x 128 weights at PE 2 SIMD 64: 1187 LUTs measured)
        depth = np.asarray(words, dtype=float)
        # a shallow ROM has at most 2^depth distinct bit columns and ABC shares equal ones
        # (PE 8 x SIMD 64 weights, 8 words of 2048 bits: 826 LUTs for the whole MVU)
        columns = np.minimum(np.asarray(width_bits, dtype=float), 2.0 ** np.minimum(depth, 30.0))
        lut_bits = columns * np.ceil(depth / w["rom_bits_per_lut"]) * w.get("rom_lut_per_column", 1.0)
    lut = np.where(in_block, 0.0, lut_bits * units)
    bram = np.where(in_block, memory_bram18(width_bits, bits_per_unit, coef) * units, 0.0)
    return lut, bram


def mvu(geo: MatrixGeometry, pe, simd, coef: dict | None = None) -> Cost:
    """Matrix-vector unit: PE output lanes x SIMD input lanes, fused requantisation."""
    c = _rtl(coef)
    m = c["mvu"]
    pe = np.asarray(pe, dtype=float)
    simd = np.asarray(simd, dtype=float)
    lanes = pe * simd
    cycles = geo.positions * (geo.mh / pe) * (geo.mw / simd)
    product_bits = geo.w_bits + geo.x_bits
    sum_bits = product_bits + np.ceil(np.log2(np.maximum(simd, 1)))
    on_dsp = product_uses_dsp(geo.w_bits, geo.x_bits, c)
    dsp = lanes * c["dsp"]["per_product"] if on_dsp else np.zeros_like(lanes)
    mult_lut = 0.0 if on_dsp else lanes * m["lut_per_mult_bit2"] * geo.w_bits * geo.x_bits
    adder_share = m["adder_lut_fraction_with_dsp"] if on_dsp else 1.0
    adder_lut = pe * (simd - 1) * sum_bits * m["lut_per_adder_bit"] * adder_share
    acc_lut = pe * geo.acc_bits * m["lut_per_acc_bit"]
    # the input word mux (stream or stored inputs for later output folds), SIMD inputs wide
    input_lut = simd * geo.x_bits * m.get("lut_per_input_bit", 0.0)
    requant_lut = pe * geo.acc_bits * m["requant_lut_per_bit"] if geo.out_bits != geo.acc_bits else 0.0
    # one ROM of (MH/PE)(MW/SIMD) words of PE*SIMD weights (cs_mvu); yosys splits it into columns
    weight_bits = float(geo.mh * geo.mw * geo.w_bits)
    word_bits = pe * simd * geo.w_bits
    w_lut, w_bram = _storage(weight_bits, word_bits, 1, c, words=weight_bits / word_bits)
    ff = (m["base_ff"] + pe * geo.acc_bits * m["ff_per_acc_bit"]
          + (0.0 if on_dsp else lanes * product_bits * m["ff_per_product_bit"]))
    # stream FIFOs the generator puts around the unit (codesign/rtl.py): 2 output beats after every
    # MVU; a dense MVU with several output folds also gets a one-sample input FIFO (MW inputs)
    # (cs_fifo reads asynchronously: yosys maps the input FIFO to LUTRAM)
    in_beats = np.maximum(2.0, geo.mw / simd)            # max(2, MW/SIMD) beats of SIMD inputs
    # (charged even at PE = MH, where the generator leaves it out: keeps "more lanes never cheaper")
    ram_bits = np.where(geo.positions == 1, in_beats * simd * geo.x_bits, 0.0 * pe)
    out_bits = 2.0 * pe * geo.out_bits
    fifo_lut = out_bits * m.get("lut_per_fifo_bit", 0.0) + ram_bits * m.get("lut_per_lutram_fifo_bit", 0.0)
    ff = ff + out_bits * m.get("ff_per_out_fifo_bit", 0.0)
    # cs_rom's registered read: one word of FFs when the ROM is in LUTs (a block RAM has its own)
    ff = ff + np.where(w_bram > 0, 0.0, word_bits) * m.get("ff_per_rom_word_bit", 0.0)
    # the MVU keeps a sample's inputs for its later output folds; one word (SIMD = MW) is a register
    ff = ff + np.where(simd >= geo.mw, geo.mw * geo.x_bits, 0.0) * m.get("ff_per_register_input_bit", 0.0)
    return Cost(cycles=cycles, latency=cycles + m["pipeline_cycles"],
                lut=m["base_lut"] + mult_lut + adder_lut + acc_lut + input_lut + requant_lut + w_lut + fifo_lut,
                ff=ff, dsp=dsp, bram18=w_bram)


def dense(layer: dict, pe=1, simd=1, coef: dict | None = None, first: bool = False) -> Cost:
    """`first` (the network's first layer) changes nothing: a dense layer reads SIMD inputs per beat."""
    return mvu(matrix_geometry(layer), pe, simd, coef)


def conv2d(layer: dict, pe=1, simd=1, coef: dict | None = None, first: bool = False) -> Cost:
    """Sliding-window unit feeding an MVU SIMD columns of the (ky, kx, c) window at a time.

    SIMD = KP*IC (cs_swu's parallel window): KP read lanes, each with its own copy of the
    line buffer (yosys replicates a memory per read port), address and padding logic; the
    input stays IC elements per beat, so a sample takes at least IH*IW cycles to read, unless
    the layer is the network's first (`first`): it then takes input_pixels_per_beat (IPB)
    pixels per beat, and its line-buffer word is IPB pixels wide."""
    c = _rtl(coef)
    geo = matrix_geometry(layer)
    core = mvu(geo, pe, simd, c)
    ic, h_in, w_in = layer["input"]["shape"]
    kh, kw = layer["kernel"]
    pad_w = layer.get("padding", [0, 0])[1]
    line_bits = ((kh - 1) * (w_in + 2 * pad_w) + kw) * ic * geo.x_bits
    s = c["swu"]
    kp = geo.kernel_positions(simd).astype(float)
    in_lanes = np.asarray(input_lanes(layer, pe, simd, first), dtype=float)
    lut, bram = _storage(line_bits, in_lanes * geo.x_bits, kp, c)
    extra = kp - 1.0  # read lanes beyond the first
    lane_bits = ic * geo.x_bits
    lut = lut + extra * (s.get("lut_per_read_lane", 0.0) + lane_bits * s.get("lut_per_read_lane_bit", 0.0))
    ff = extra * (s.get("ff_per_read_lane", 0.0) + lane_bits * s.get("ff_per_read_lane_bit", 0.0))
    cycles = conv_cycles(layer, pe, simd, first)
    return Cost(cycles=cycles, latency=core.latency - core.cycles + cycles + s["pipeline_cycles"],
                lut=core.lut + s["base_lut"] + lut, ff=core.ff + s["base_ff"] + ff,
                dsp=core.dsp, bram18=core.bram18 + bram)


def maxpool2d(layer: dict, lanes=1, coef: dict | None = None) -> Cost:
    """Streaming max pool over `lanes` channels per cycle (the producer's PE)."""
    c = _rtl(coef)
    p = c["maxpool"]
    ch, h, w = layer["input"]["shape"]
    bits = int(layer["input"]["bits"])
    lanes = np.asarray(lanes, dtype=float)
    cycles = h * w * ch / lanes
    out_w = layer["output"]["shape"][2]
    row_bits = out_w * ch * bits  # partial maxima of one output row
    lut, bram = _storage(row_bits, lanes * bits, 1, c)
    return Cost(cycles=cycles, latency=cycles + p["pipeline_cycles"],
                lut=p["base_lut"] + lanes * bits * p["lut_per_cmp_bit"] + lut,
                ff=lanes * bits * p["ff_per_bit"], bram18=bram)


def flatten(layer: dict, lanes=1, coef: dict | None = None) -> Cost:
    """Free: the stream order is already the flattened order (HWC, docs/ir.md)."""
    return Cost()


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
    cycle plus one, twice over the logits for max_softmax / entropy."""
    return (2 if policy in ("max_softmax", "entropy") else 1) * int(num_classes) + 1


def threshold_pipe_latency(policy: str, num_classes: int) -> int:
    """Input handshake to result of cs_threshold_pipe: input register, clog2(C) argmax-tree levels,
    2 (max_softmax) or 4 (entropy) softmax stages, output register (tests/test_rtl_threshold.py)."""
    levels = max(1, int(np.ceil(np.log2(max(int(num_classes), 2)))))
    return 2 + levels + {"max_softmax": 2, "entropy": 4}.get(policy, 0)


def threshold_parallel(policy: str, num_classes: int, stage_ii) -> np.ndarray:
    """THE choice of threshold-unit form (stages.py, the DSE and codesign/rtl.py all follow it):
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
    dsp = 0.0
    cycles = scan
    if policy in ("max_softmax", "entropy"):
        p_bits = int(tables.get("p", 8))
        n_exp = int(tables.get("n", 64))
        sum_bits = p_bits + 1 + int(np.ceil(np.log2(num_classes)))
        # second pass over the stored logits: subtract, shift, look up, accumulate
        lut += cmp_bits + np.ceil(n_exp * (p_bits + 1) / t["exp_table_bits_per_lut"]) + sum_bits
        ff += num_classes * logit_bits * t.get("ff_per_stored_logit_bit", 1.0) + sum_bits
        cycles = 2 * scan
        if policy == "entropy":
            g_bits = int(tables.get("g", 8))
            m_bits = int(tables.get("m", 5))
            lut += np.ceil((2 ** m_bits) * g_bits / t["exp_table_bits_per_lut"]) + 2 * sum_bits
            ff += 2 * (sum_bits + g_bits + 6)
            dsp = 3.0  # e_j * L(e_j), sum_e * L(sum_e), Th * sum_e
    elif policy == "patience":
        lut += 2 * 8  # class compare + count compare
        ff += 8
    elif policy != "margin":
        raise ValueError(f"unknown policy {policy!r}")
    cycles = cycles + 1.0
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
    if policy not in q["lut_per_node_bit"]:
        raise ValueError(f"unknown policy {policy!r}")
    n, lb = float(num_classes), float(logit_bits)
    glue_lut = max(t["base_lut"] - q["unit_lut_in_base"], 0.0)
    glue_ff = max(t["base_ff"] - q["unit_ff_in_base"], 0.0)
    lut = glue_lut + q["lut_per_node_bit"][policy] * (n - 1) * lb + q["lut_per_lane"][policy] * n
    ff = glue_ff + q["ff_per_logit_bit"][policy] * n * lb + q["ff_per_lane"][policy] * n
    dsp = n + 2.0 if policy == "entropy" else 0.0  # e_j L(e_j) per lane, sum_e L(sum_e), Th sum_e
    latency = float(threshold_pipe_latency(policy, num_classes))
    return Cost(cycles=1.0, latency=latency, lut=lut, ff=ff, dsp=dsp)


COND_BUFFER_SLOTS_IN_FLIGHT = 1


def cond_buffer_slots(depth):
    """Sample slots of the RTL's cs_cond_buffer for an IR `buffer_depth` (the system model's
    `depth`: samples decided to continue that the buffer holds).  A slot is taken with a
    sample's first beat and freed when it is dropped or its last beat has left, so one more
    slot holds the sample being written / awaiting its decision (docs/rtl.md).  codesign/rtl.py
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


# keyed by the IR's `kind`; compute kinds take (layer, pe, simd), others (layer, lanes); conv2d also
# `first=True` for the network's first layer (geometry.input_layer_name), which may read several
# pixels per beat
LAYER_MODELS = {"dense": dense, "conv2d": conv2d, "maxpool2d": maxpool2d, "flatten": flatten}
