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


def memory_bram18(width_bits: ArrayLike, total_bits: ArrayLike, coef: dict) -> np.ndarray:
    """18 Kb halves for a memory of the given word width and size."""
    mem = coef["memory"]
    by_width = np.ceil(np.asarray(width_bits, dtype=float) / mem["bram18_max_width"])
    by_size = np.ceil(np.asarray(total_bits, dtype=float) / mem["bram18_bits"])
    return np.maximum(by_width, by_size)
