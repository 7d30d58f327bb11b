"""The cost of one hardware block: cycles per sample, latency, resources.

Fields may be numpy arrays (one entry per candidate folding) so that the DSE
evaluates many foldings of a layer in one call.  ``bram18`` counts 18 Kb
block RAM halves; ``bram`` reports 36 Kb tiles as Vivado does (half = 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

ArrayLike = "float | np.ndarray"


@dataclass
class Cost:
    cycles: ArrayLike = 0.0   # cycles per sample (1 / initiation rate)
    latency: ArrayLike = 0.0  # cycles from first input to last output of one sample
    lut: ArrayLike = 0.0
    ff: ArrayLike = 0.0
    dsp: ArrayLike = 0.0
    bram18: ArrayLike = 0.0

    @property
    def bram(self) -> ArrayLike:
        return np.asarray(self.bram18) / 2.0

    def resources(self) -> dict[str, ArrayLike]:
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram": self.bram}

    def to_dict(self) -> dict[str, float]:
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        out["bram"] = _plain(self.bram)
        return out


def _plain(value: ArrayLike) -> float | list:
    arr = np.asarray(value, dtype=float)
    return float(arr) if arr.ndim == 0 else arr.tolist()


# RAMB18E1 shapes (depth, width) yosys maps a simple dual-port memory to (512 x 36: SDP only)
BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def bram18_by_shape(width_bits: ArrayLike, depth_words: ArrayLike) -> np.ndarray:
    """18 Kb halves for `depth_words` words of `width_bits`: the cheapest RAMB18 shape, whole
    blocks per shape (a 2080 x 8 memory takes 2, not the 1 its 16,640 bits would fill)."""
    w = np.asarray(width_bits, dtype=float)[..., None]
    d = np.asarray(depth_words, dtype=float)[..., None]
    shapes = np.array(BRAM18_SHAPES, dtype=float)
    return (np.ceil(d / shapes[:, 0]) * np.ceil(w / shapes[:, 1])).min(axis=-1)


def memory_bram18(width_bits: ArrayLike, total_bits: ArrayLike, coef: dict) -> np.ndarray:
    """18 Kb halves for a memory of the given word width and size."""
    mem = coef["memory"]
    by_width = np.ceil(np.asarray(width_bits, dtype=float) / mem["bram18_max_width"])
    by_size = np.ceil(np.asarray(total_bits, dtype=float) / mem["bram18_bits"])
    return np.maximum(by_width, by_size)
