"""Lane packing and the ROM init files ($readmemh) the RTL units read: the one definition the
generator, the unit tests and the module benchmarks share."""
from __future__ import annotations

from typing import Iterable

import numpy as np


def pack(values: Iterable[int], bits: int) -> int:
    """Lanes -> one beat: element i at bits [i*bits +: bits] (two's complement)."""
    mask = (1 << bits) - 1
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


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
