"""The stage IR (RUN/design.json): schema, validation, loading. numpy only.

docs/ir.md describes it; every back end reads it through `load_design`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from codesign.errors import UserError

SCHEMA = 1
DESIGN_FILE = "design.json"


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


class DenseLayer(_Compute):
    kind: Literal["dense"]
    in_features: int
    out_features: int

    @property
    def macs(self) -> int:
        return self.in_features * self.out_features


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

    @property
    def num_exits(self) -> int:
        return len(self.stages)

    @property
    def root(self) -> Path:
        return self._root

    def array(self, rel: str) -> np.ndarray:
        """An integer array the IR refers to (weights, bias), loaded once."""
        if rel not in self._cache:
            path = self._root / rel
            if not path.is_file():
                raise UserError(f"{path} (referenced by design.json) is missing; rerun `codesign export`")
            self._cache[rel] = np.load(path).astype(np.int64)
        return self._cache[rel]

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


def save_design(design: Design, run: Path) -> Path:
    path = Path(run) / DESIGN_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(design.dump())
    tmp.replace(path)  # never leave a half-written IR behind
    return path


def load_design(run: str | Path) -> Design:
    """Read and validate RUN/design.json; array paths resolve against RUN."""
    run = Path(run)
    path = run / DESIGN_FILE
    if not path.is_file():
        raise UserError(f"{path} not found; run `codesign export {run}` first")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); rerun `codesign export {run}`") from None
    if data.get("schema") != SCHEMA:
        raise UserError(f"{path}: schema {data.get('schema')!r} is not {SCHEMA}; rerun `codesign export {run}`")
    try:
        design = Design.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: {loc}: {first['msg']}; rerun `codesign export {run}`") from None
    design._root = run
    return design
