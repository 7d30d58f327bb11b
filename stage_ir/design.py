"""The stage IR (RUN/design.json): its typed schema and the checks of the arrays it refers to.

docs/ir.md describes it; codesign.ir reads and writes it in a run folder, every back end and hw_models
take the typed `Design` this module defines.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from stage_ir.errors import UserError

SCHEMA = 1
DESIGN_FILE = "design.json"
# the stage IR as `codesign export` wrote it: every exit, fully folded, no policy; calibrate and
# dse start from it, so a design.json the DSE reduced never hides the rest of the network
EXPORTED_FILE = "export/design.json"
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


class _IR(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorSpec(_IR):
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


class Act(_IR):
    """Requantisation after the accumulator: clip(acc >> shift, 0, 2**bits - 1)."""

    bits: int = Field(ge=1, le=16)
    frac: int
    shift: int


class Folding(_IR):
    pe: int = Field(1, ge=1)
    simd: int = Field(1, ge=1)


class _LayerBase(_IR):
    name: str
    input: TensorSpec
    output: TensorSpec


class _Compute(_LayerBase):
    weight: str
    bias: str
    w_bits: int = Field(ge=2, le=8)
    w_frac: int
    acc_bits: int = Field(ge=2, le=64)
    act: Act | None
    folding: Folding = Field(default_factory=Folding)
    reuse_factor: int | None = Field(None, ge=1)

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


class DenseLayer(_Compute):
    kind: Literal["dense"]
    in_features: int
    out_features: int

    @property
    def macs(self) -> int:
        return self.in_features * self.out_features

    def array_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.out_features, self.in_features), (self.out_features,)


class Conv2dLayer(_Compute):
    kind: Literal["conv2d"]
    in_channels: int
    out_channels: int
    kernel: list[int]
    stride: list[int]
    padding: list[int]

    @property
    def macs(self) -> int:
        _, oh, ow = self.output.shape
        return oh * ow * self.out_channels * self.in_channels * self.kernel[0] * self.kernel[1]

    def array_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.out_channels, self.in_channels, *self.kernel), (self.out_channels,)


class MaxPool2dLayer(_LayerBase):
    kind: Literal["maxpool2d"]
    kernel: list[int]
    stride: list[int]
    macs: int = 0


class FlattenLayer(_LayerBase):
    kind: Literal["flatten"]
    macs: int = 0


Layer = Annotated[Union[DenseLayer, Conv2dLayer, MaxPool2dLayer, FlattenLayer], Field(discriminator="kind")]
COMPUTE_KINDS = ("dense", "conv2d")


class Stage(_IR):
    index: int
    input: TensorSpec
    layers: list[Layer]
    features: TensorSpec | None
    head: list[Layer] = Field(min_length=1)
    logits: TensorSpec
    macs: dict[str, int]
    buffer_depth: int | None = Field(None, ge=1)
    # the exported stages (RUN/export/stage_<k>.onnx) this stage runs: their backbones in order,
    # the head of the last one (a DSE-dropped exit's stage merges into the next kept one)
    export_stages: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _default_export_stages(self) -> "Stage":
        if not self.export_stages:  # written before the field existed: the stage is its own export
            self.export_stages = [self.index]
        return self

    @property
    def all_layers(self) -> list[Any]:
        return [*self.layers, *self.head]


class Policy(_IR):
    kind: Literal["margin", "max_softmax", "entropy", "patience"]
    thresholds: list[int]
    tables: dict[str, Any] = Field(default_factory=dict)
    float_thresholds: list[float] = Field(default_factory=list)


class Design(_IR):
    schema_: Literal[1] = Field(SCHEMA, alias="schema")
    name: str
    num_classes: int = Field(ge=2)
    input: TensorSpec
    stages: list[Stage] = Field(min_length=1)
    policy: Policy | None = None
    clock_ns: float = Field(gt=0)
    device: str
    macs_no_exit: int
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    _root: Path = PrivateAttr(default=Path("."))
    _cache: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_stages(self) -> "Design":
        runs = [e for st in self.stages for e in st.export_stages]
        if runs != list(range(len(runs))):
            raise ValueError(f"stages' export_stages {[st.export_stages for st in self.stages]} do not cover the "
                             "exported stages once each, in order")
        if [st.index for st in self.stages] != list(range(len(self.stages))):
            raise ValueError("stage indices are not 0, 1, ... in order")
        if self.policy is not None and len(self.policy.thresholds) != len(self.stages) - 1:
            raise ValueError(f"policy has {len(self.policy.thresholds)} thresholds for {len(self.stages) - 1} early exits")
        return self

    @property
    def num_exits(self) -> int:
        return len(self.stages)

    @property
    def exits_kept(self) -> list[int]:
        """Exported exit index of each exit this design has (the final classifier last)."""
        return [st.export_stages[-1] for st in self.stages]

    @property
    def exits_dropped(self) -> list[int]:
        """Exported early exits this design does not build (their stages merged into the next)."""
        return [e for st in self.stages for e in st.export_stages[:-1]]

    @property
    def root(self) -> Path:
        return self._root

    def array(self, rel: str) -> np.ndarray:
        """An integer array the IR refers to (weights, bias), loaded and checked once.

        A layer's weight and bias are loaded together and checked against the layer: shapes, the
        weights' w_bits, the bias width of the back ends, an accumulator acc_bits wide (the RTL and
        HLS would silently truncate or wrap what does not fit)."""
        if rel not in self._cache:
            owner = next((l for l in self.layers() if getattr(l, "weight", None) == rel or getattr(l, "bias", None) == rel),
                         None)
            if owner is None:
                self._cache[rel] = self._read_array(rel)
            else:
                w, b = self._read_array(owner.weight), self._read_array(owner.bias)
                problem = owner.array_problem(w, b)
                if problem:
                    raise UserError(f"{self._root / DESIGN_FILE}: layer {owner.name}: {problem} "
                                    f"({owner.weight}, {owner.bias}); rerun `codesign export {self._root}`")
                self._cache.update({owner.weight: w, owner.bias: b})
        return self._cache[rel]

    def _read_array(self, rel: str) -> np.ndarray:
        path = self._root / rel
        fix = f"rerun `codesign export {self._root}`"
        if not path.is_file():
            raise UserError(f"{path} (referenced by design.json) is missing; {fix}")
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            raise UserError(f"{path} is not a valid .npy array; {fix}") from None
        if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.integer):
            raise UserError(f"{path} holds {getattr(arr, 'dtype', type(arr).__name__)} values, not integers; {fix}")
        return arr.astype(np.int64)

    def layers(self) -> list[Any]:
        return [layer for stage in self.stages for layer in stage.all_layers]

    def layer(self, name: str) -> Any:
        for layer in self.layers():
            if layer.name == name:
                return layer
        raise UserError(f"design.json has no layer {name!r}")

    def as_dict(self) -> dict[str, Any]:
        """The plain JSON-shaped dict of design.json (what the numpy-only hw_models take)."""
        return self.model_dump(mode="json", by_alias=True)

    def dump(self) -> str:
        return json.dumps(self.as_dict(), indent=1, sort_keys=False) + "\n"
