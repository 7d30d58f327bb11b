"""The IR's value types: a tensor's integer grid, a requantisation, a folding (docs/ir.md)."""
from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# Biases are integers at the accumulator's scale held in 16 signed bits: the export's Int16Bias
# clamps them there and hls4ml types them so (bias_t ap_fixed<16, ..>); the RTL holds acc_bits.
BIAS_BITS = 16


def signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def accumulator_range(w: np.ndarray, b: np.ndarray, x_lo: int, x_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output: the lowest and highest value any partial sum of the accumulator (bias included or
    not yet) takes for inputs in [x_lo, x_hi]."""
    wf = w.reshape(len(w), -1).astype(np.int64)
    hi = np.maximum(wf * x_lo, wf * x_hi).sum(1) + np.maximum(b, 0)
    lo = np.minimum(wf * x_lo, wf * x_hi).sum(1) + np.minimum(b, 0)
    return lo, hi


class IRModel(BaseModel):
    """Every IR object: unknown keys are an error (a typo in design.json is never ignored)."""

    model_config = ConfigDict(extra="forbid")


class TensorSpec(IRModel):
    shape: list[int]
    bits: int = Field(ge=1, le=64)
    frac: int
    signed: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def value_range(self) -> tuple[int, int]:
        """The integers this grid holds."""
        return signed_range(self.bits) if self.signed else (0, (1 << self.bits) - 1)


class Act(IRModel):
    """Requantisation after the accumulator: clip(acc >> shift, 0, 2**bits - 1)."""

    bits: int = Field(ge=1, le=16)
    frac: int
    shift: int


class Folding(IRModel):
    pe: int = Field(1, ge=1)
    simd: int = Field(1, ge=1)
    # input pixels per beat: above 1 for the network's first layer only (a conv fed by s_axis);
    # a hardware decision (hw_models.decisions), read as written once the design is decided
    pixels_per_beat: int = Field(1, ge=1)
