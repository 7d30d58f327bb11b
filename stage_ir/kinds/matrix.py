"""The matrix-vector unit every compute kind is built on (dense, conv2d): its IR fields and array
checks, its geometry and legal foldings, the MVU's RTL cost, hls4ml's matmul cost, and the
RTL timing rules of a dense-style MVU (a conv overrides what its window changes)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from stage_ir.cost import Cost, memory_bram18
from stage_ir.errors import UserError
from stage_ir.kinds import rom
from stage_ir.kinds.base import MAX_LOGIT_BITS, ArrayReader, LayerKind, divisors
from stage_ir.tensors import BIAS_BITS, Act, Folding, accumulator_range, signed_range

HLS_STRATEGIES = ("latency", "resource")


def legal_simds(mw: int, simd_dim: int) -> tuple[int, ...]:
    """SIMD values a compute layer takes (the one definition: DSE, RTL generator, checks).

    A divisor of simd_dim (in_features; a conv's IC: channel folds of one kernel position
    per beat), or, for a conv (mw = KH*KW*IC), KP*IC with KP dividing KH*KW: cs_swu's
    parallel-window mode, KP kernel positions of all channels per beat, so a conv with few
    channels is not bound to KH*KW beats per output pixel.
    """
    kk = mw // simd_dim
    return tuple(sorted(set(divisors(simd_dim)) | {kp * simd_dim for kp in divisors(kk)}))


@dataclass(frozen=True)
class MatrixGeometry:
    """A compute layer seen as a matrix-vector unit applied at `positions` pixels."""
    mw: int           # matrix width: inputs per output (in_features or kh*kw*ic)
    mh: int           # matrix height: outputs (out_features or oc)
    simd_dim: int     # inputs of one position: in_features, or ic (a conv's channels)
    positions: int    # output pixels (1 for dense)
    x_bits: int
    w_bits: int
    acc_bits: int
    out_bits: int     # activation bits, or acc_bits for logits

    @property
    def simds(self) -> tuple[int, ...]:
        """Legal SIMD values (`legal_simds`)."""
        return legal_simds(self.mw, self.simd_dim)

    def kernel_positions(self, simd):
        """KP: kernel positions per input beat of the MVU (1 unless SIMD > simd_dim); numpy-friendly."""
        return np.maximum(np.asarray(simd) // self.simd_dim, 1)

    def in_lanes(self, simd):
        """Elements per beat the layer's input stream carries: SIMD, or a conv's IC when SIMD = KP*IC."""
        return np.minimum(np.asarray(simd), self.simd_dim)


def window_walk(geo: MatrixGeometry, pe, simd):
    """Cycles of a compute layer's (PE, SIMD)-folded matrix-vector walk over its positions."""
    return geo.positions * (geo.mh / np.asarray(pe, dtype=float)) * (geo.mw / np.asarray(simd, dtype=float))


def product_uses_dsp(w_bits: int, x_bits: int, coef: dict) -> bool:
    """True when yosys synth_xilinx (xc7) maps a w_bits x x_bits product to a DSP.

    Its mul2dsp rule: signed operands of at least 2 bits, within the 25 x 18
    ports, and a product of at least DSP_Y_MINWIDTH = 9 bits.  Activations are
    unsigned, so they enter the signed multiplier one bit wider.
    """
    d = coef["dsp"]
    x_signed = x_bits + 1
    fits = (min(w_bits, x_signed) >= d["min_operand_bits"] and min(w_bits, x_signed) <= d["b_max_bits"]
            and max(w_bits, x_signed) <= d["a_max_bits"])
    return fits and (w_bits + x_signed) >= d["min_product_bits"]


def storage_cost(bits_per_unit, width_bits, units, coef: dict, words=None) -> tuple[np.ndarray, np.ndarray]:
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


def mvu_cost(geo: MatrixGeometry, pe, simd, coef: dict) -> Cost:
    """Matrix-vector unit (cs_mvu): PE output lanes x SIMD input lanes, fused requantisation."""
    c = coef
    m = c["mvu"]
    pe = np.asarray(pe, dtype=float)
    simd = np.asarray(simd, dtype=float)
    lanes = pe * simd
    cycles = window_walk(geo, pe, simd)
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
    w_lut, w_bram = storage_cost(weight_bits, word_bits, 1, c, words=weight_bits / word_bits)
    ff = (m["base_ff"] + pe * geo.acc_bits * m["ff_per_acc_bit"]
          + (0.0 if on_dsp else lanes * product_bits * m["ff_per_product_bit"]))
    # stream FIFOs the generator puts around the unit (codesign/rtl/): 2 output beats after every
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


def matmul_hls_cost(geo: MatrixGeometry, reuse_factor, strategy: str, coef: dict, memory: dict) -> Cost:
    """hls4ml's dense/conv matmul: MW*MH/RF multipliers, a new input every RF cycles per position.
    NOT checked against vendor synthesis (Vitis HLS is not part of this toolchain)."""
    c = coef
    if strategy not in HLS_STRATEGIES:
        raise ValueError(f"strategy {strategy!r} not in {HLS_STRATEGIES}")
    rf = np.asarray(reuse_factor, dtype=float)
    n_mult = np.ceil(geo.mw * geo.mh / rf)
    product_bits = geo.w_bits + geo.x_bits
    on_dsp = product_bits >= c["dsp_min_product_bits"]
    dsp = n_mult if on_dsp else np.zeros_like(n_mult)
    mult_lut = 0.0 if on_dsp else n_mult * c["lut_per_mult_bit2"] * geo.w_bits * geo.x_bits
    adder_lut = n_mult * (product_bits + np.log2(geo.mw)) * c["lut_per_adder_bit"]
    weight_bits = geo.mw * geo.mh * geo.w_bits
    use_bram = (strategy == "resource") & (rf >= c["resource_bram_min_rf"])
    bram = np.where(use_bram, memory_bram18(n_mult * geo.w_bits, weight_bits, {"memory": memory}), 0.0)
    ii = geo.positions * rf
    latency = ii + np.ceil(np.log2(geo.mw)) + c["latency_overhead"]
    return Cost(cycles=ii, latency=latency, lut=c["base_lut"] + mult_lut + adder_lut,
                ff=c["base_ff"] + n_mult * c["ff_per_mult"], dsp=dsp, bram18=bram)


class MatrixLayer(LayerKind):
    """A layer with integer weights and bias, computed by a (PE, SIMD)-folded matrix-vector unit."""

    computes = True
    paces = True

    weight: str
    bias: str
    w_bits: int = Field(ge=2, le=8)
    w_frac: int
    acc_bits: int = Field(ge=2, le=64)
    act: Act | None
    folding: Folding = Field(default_factory=Folding)
    reuse_factor: int | None = Field(None, ge=1)

    # ---- semantics
    def array_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(weight, bias) shapes as the export writes them."""
        raise NotImplementedError

    def array_problem(self, w: np.ndarray, b: np.ndarray) -> str | None:
        """What is wrong with integer arrays (w, b) for this layer, as the back ends would build it."""
        for what, arr, want in (("weight", w, self.array_shapes()[0]), ("bias", b, self.array_shapes()[1])):
            if tuple(arr.shape) != want:
                return f"{what} has shape {list(arr.shape)}, not {list(want)}"
        hi = (1 << (self.w_bits - 1)) - 1  # narrow range, as the export's quantisers and hls4ml's AP_SAT_SYM
        if w.size and (w.min() < -hi or w.max() > hi):
            bad = int(w.max()) if w.max() > hi else int(w.min())
            return f"weight {bad} is outside its narrow signed {self.w_bits}-bit range [{-hi}, {hi}]"
        bias_bits = min(BIAS_BITS, self.acc_bits)
        lo, hi = signed_range(bias_bits)
        if b.size and (b.min() < lo or b.max() > hi):
            bad = int(b.max()) if b.max() > hi else int(b.min())
            return f"bias {bad} is outside the signed {bias_bits}-bit range [{lo}, {hi}] the back ends give a bias"
        acc_lo, acc_hi = accumulator_range(w, b, *self.input.value_range)
        need = max(int(acc_hi.max(initial=0)).bit_length(), int(-acc_lo.min(initial=0) - 1).bit_length()) + 1
        if need > self.acc_bits:
            return f"acc_bits {self.acc_bits} cannot hold its accumulator (its weights and inputs need {need})"
        return None

    def requantise(self, acc: np.ndarray) -> np.ndarray:
        """clip(acc >> shift, 0, 2**bits - 1); numpy's >> on int64 floors, as the hardware's arithmetic shift."""
        act = self.act
        if act is None:
            return acc
        shifted = acc >> act.shift if act.shift >= 0 else acc << -act.shift
        return np.clip(shifted, 0, 2**act.bits - 1)

    # ---- geometry and folding
    @property
    def geometry(self) -> MatrixGeometry:
        raise NotImplementedError

    @property
    def out_bits(self) -> int:
        """Bits of an output element: the activation's, or the accumulator's for logits."""
        return self.act.bits if self.act is not None else self.acc_bits

    def check_folding(self, pe: int, simd: int) -> tuple[int, int]:
        geo = self.geometry
        if geo.mh % pe or simd not in geo.simds:
            raise UserError(f"layer {self.name!r}: folding pe={pe}, simd={simd}: pe must divide {geo.mh} outputs, "
                            f"simd be one of {', '.join(map(str, geo.simds))}")
        return pe, simd

    def foldings(self) -> np.ndarray:
        """[n, 2] every legal (PE, SIMD), PE ascending then SIMD ascending (the DSE's option order)."""
        geo = self.geometry
        return np.array([(p, s) for p in divisors(geo.mh) for s in geo.simds], dtype=float)

    def pixels_per_beat(self, pe, simd):
        """Input pixels per beat when this layer is the network's first (fed by s_axis): 1 here."""
        shape = np.broadcast_shapes(np.shape(pe), np.shape(simd))
        return 1 if shape == () else np.ones(shape, dtype=int)

    def in_lanes(self, pe, simd, ipb=1):
        """Elements per beat of the layer's input stream (the one definition: cost model, stage
        chain, RTL generator); `ipb`: input pixels per beat (above 1 for the network's first
        layer only, Folding.pixels_per_beat).  numpy-friendly."""
        return self.geometry.in_lanes(simd) * ipb

    def pixels_per_beat_problem(self, ipb: int) -> str | None:
        """What is wrong with `ipb` input pixels per beat at the layer's folding as the network's
        first layer, or None (a dense layer takes one)."""
        return None if ipb == 1 else f"pixels_per_beat {ipb}: a {self.kind} layer takes one input pixel per beat"

    # ---- RTL unit (cs_mvu and the units built on it)
    def check_rtl_widths(self, where: str) -> None:
        super().check_rtl_widths(where)
        if self.act is None and self.acc_bits > MAX_LOGIT_BITS:
            raise UserError(f"{where}: {self.acc_bits}-bit logits; the threshold unit takes at most {MAX_LOGIT_BITS} "
                            "bits (lower the weight/activation bit widths)")

    def mvu_params(self, array: ArrayReader, weight: np.ndarray) -> tuple[dict, dict[str, str]]:
        """cs_mvu's parameters and ROM files for the weight matrix [MH, MW] in stream order."""
        pe, simd = self.folding.pe, self.folding.simd
        act = self.act
        params = {
            "PE": pe, "SIMD": simd, "IB": self.input.bits, "IN_SIGNED": int(self.input.signed),
            "WB": self.w_bits, "ACC_BITS": self.acc_bits, "HAS_ACT": int(act is not None),
            "OB": act.bits if act else 1, "SHIFT": act.shift if act else 0,
            "WEIGHT_FILE": f"{self.name}_w.hex", "BIAS_FILE": f"{self.name}_b.hex",
        }
        files = {
            params["WEIGHT_FILE"]: rom.mvu_weight_hex(weight, pe, simd, self.w_bits),
            params["BIAS_FILE"]: rom.mvu_bias_hex(array(self.bias), pe, self.acc_bits),
        }
        return params, files

    # ---- cost
    def rtl_cost(self, coef: dict, pe=1, simd=1, ipb=1) -> Cost:
        """RTL cost at folding (pe, simd), numpy-broadcastable; `coef`: coefficients.yaml's rtl."""
        return mvu_cost(self.geometry, pe, simd, coef)

    def cycles(self, pe=1, simd=1, ipb=1):
        """Cycles per sample at folding (pe, simd) (cs_mvu, Verilator-exact); numpy-friendly."""
        return window_walk(self.geometry, pe, simd)

    def hls_cost(self, coef: dict, memory: dict, reuse_factor=1, strategy: str = "latency") -> Cost:
        return matmul_hls_cost(self.geometry, reuse_factor, strategy, coef, memory)

    # ---- RTL timing (hw_models.rtl_timing; measured in Verilator, docs/hw_models.md)
    def fold_cycles(self, pe: int, simd: int) -> tuple[float, int]:
        """(cycles of one output fold at one position, output folds per sample)."""
        geo = self.geometry
        return geo.mw / simd, geo.positions * -(-geo.mh // pe)

    def input_queue(self, pe: int) -> int:
        """Whole samples this layer, first of stage k+1, takes from buffer k before it starts them:
        with more than one output fold the MVU has an input FIFO of one whole sample."""
        return int(self.geometry.mh > pe)

    def drain_fraction(self, pe: int) -> float:
        """Share of the stage's II from taking a sample to reading its last beat: none behind an
        input FIFO, the whole II when the MVU reads its input at its own pace (one output fold)."""
        return 0.0 if self.geometry.mh > pe else 1.0

    def write_span(self, ii: float, pe: int, simd: int) -> float:
        """Cycles this layer, last of a stage, spends emitting one sample: PE outputs per fold,
        one fold every MW/SIMD cycles after its input is in."""
        fold, folds = self.fold_cycles(pe, simd)
        return (folds - 1) * fold

    def folds_after_input(self, pe: int, simd: int) -> int:
        """Output folds left once the sample's last input beat is in."""
        return self.fold_cycles(pe, simd)[1] - 1
