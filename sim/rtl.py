"""The RTL module library (templates/rtl) seen from Python: file lookup,
dependencies, and the data layouts the modules expect (lane packing, ROM
init files).  The full-design generator and the unit tests share these."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

# module -> modules it instantiates (one module per file, file = name + ".v")
RTL_DEPS: dict[str, tuple[str, ...]] = {
    "cs_rom": (),
    "cs_requant": (),
    "cs_fifo": (),
    "cs_mvu": ("cs_rom", "cs_requant"),
    "cs_swu": ("cs_fifo",),
    "cs_conv": ("cs_swu", "cs_mvu"),
    "cs_window_max": (),
    "cs_maxpool": ("cs_swu", "cs_window_max"),
    "cs_stream_upsize": (),
    "cs_stream_downsize": (),
    "cs_width_converter": ("cs_stream_upsize", "cs_stream_downsize"),
    "cs_split": (),
    "cs_cond_buffer": (),
    "cs_exit_merge": (),
    "cs_fixed_log2": (),
    "cs_threshold_unit": ("cs_fixed_log2",),
    "cs_threshold_pipe": ("cs_fixed_log2",),
}


def rtl_dir() -> Path:
    """templates/rtl in a source tree, codesign/templates/rtl when installed."""
    here = Path(__file__).resolve().parent.parent / "templates" / "rtl"
    if here.is_dir():
        return here
    import importlib.resources

    return Path(str(importlib.resources.files("codesign.templates") / "rtl"))


def rtl_sources(*tops: str) -> list[Path]:
    """Verilog files of `tops` and everything they instantiate, each once."""
    seen: list[str] = []

    def visit(m: str) -> None:
        if m in seen:
            return
        for d in RTL_DEPS[m]:
            visit(d)
        seen.append(m)

    for t in tops:
        visit(t)
    return [rtl_dir() / f"{m}.v" for m in seen]


def pack(values: Iterable[int], bits: int) -> int:
    """Lanes -> one beat: element i at bits [i*bits +: bits] (two's complement)."""
    mask = (1 << bits) - 1
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


def unpack(word: int, lanes: int, bits: int, signed: bool = False) -> list[int]:
    """One beat -> lanes (inverse of `pack`)."""
    mask = (1 << bits) - 1
    out = []
    for i in range(lanes):
        v = (word >> (i * bits)) & mask
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return out


def beats(values: Sequence[int], lanes: int, bits: int) -> list[int]:
    """A flat element stream -> beats of `lanes` elements."""
    assert len(values) % lanes == 0, "stream length must be a multiple of the lanes"
    return [pack(values[i:i + lanes], bits) for i in range(0, len(values), lanes)]


def unbeats(words: Sequence[int], lanes: int, bits: int, signed: bool = False) -> list[int]:
    """Beats -> flat element stream (inverse of `beats`)."""
    return [v for w in words for v in unpack(w, lanes, bits, signed)]


def hex_lines(words: Iterable[int], bits: int) -> str:
    """$readmemh text: one fixed-width hex word per line."""
    digits = max(1, (bits + 3) // 4)
    return "".join(f"{int(w):0{digits}x}\n" for w in words)


def mvu_weight_hex(weight: np.ndarray, pe: int, simd: int, w_bits: int) -> str:
    """cs_mvu WEIGHT_FILE for weight [MH, MW]: word nf*SF+sf holds
    weight[nf*PE+p, sf*SIMD+s] at lane p*SIMD+s."""
    mh, mw = weight.shape
    nf, sf = mh // pe, mw // simd
    words = []
    for n in range(nf):
        for s in range(sf):
            block = weight[n * pe:(n + 1) * pe, s * simd:(s + 1) * simd]
            words.append(pack(block.reshape(-1), w_bits))
    return hex_lines(words, pe * simd * w_bits)


def mvu_bias_hex(bias: np.ndarray, pe: int, acc_bits: int) -> str:
    """cs_mvu BIAS_FILE: word nf holds bias[nf*PE + p] at lane p."""
    b = np.asarray(bias).reshape(-1, pe)
    return hex_lines([pack(row, acc_bits) for row in b], pe * acc_bits)


def conv_weight_matrix(weight: np.ndarray) -> np.ndarray:
    """Conv weight [OC, IC, KH, KW] (PyTorch) -> MVU matrix [OC, KH*KW*IC] in
    the sliding window's (ky, kx, c) order."""
    oc = weight.shape[0]
    return np.ascontiguousarray(weight.transpose(0, 2, 3, 1)).reshape(oc, -1)


def axis_ports(in_bits: int, out_bits: int, statics: Sequence[str] = ()) -> "TopPorts":
    """Ports of a library module with one `in_*` and one `out_*` stream."""
    from sim.build import Stream, TopPorts

    return TopPorts([Stream.axis("in", in_bits)], [Stream.axis("out", out_bits)], tuple(statics))


def build_module(top: str, ports: "TopPorts", params: dict[str, int | str] | None = None, **kw) -> Path:
    """Build a library module (with its dependencies) as the simulation top."""
    from sim.build import build

    return build(top, rtl_sources(top), ports, params, **kw)
