"""Config layers (the lists of config.yaml's `model`): each layer type's schema, output shape and
the torch / Brevitas module it becomes. Modules are named by dotted path and their quantisers by
role (`Quant`), so that this package needs neither torch nor Brevitas: codesign.frontend.model builds them."""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class StrictConfig(BaseModel):
    # YAML reads .inf and .nan as floats: a learning rate of inf trains a NaN network
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


BITS = Annotated[int, Field(ge=2, le=8, description="bit width (2..8)")]


@dataclass(frozen=True)
class Quant:
    """A quantiser of the bit-exact recipe (TOOLCHAIN.md) the front end supplies: a layer's weights
    at `bits`, its 16-bit integer bias, or activations at `bits`."""

    role: Literal["weight", "bias", "act"]
    bits: int = 0


@dataclass(frozen=True)
class TorchModule:
    """The module a config layer becomes: class by dotted path, arguments (Quant values become
    the front end's quantiser classes)."""

    path: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerPlan:
    """One config layer with its resolved sizes (shape excludes the batch)."""

    spec: "LayerSpec"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    bits: int


class LayerSpec(StrictConfig):
    """A layer of the config; a type is a subclass with a `type: Literal[...]` field, registered in
    stage_ir.kinds (SPECS). Its flags state the rules the network builder checks."""

    type: str  # each type narrows it to its Literal (the field keeps its place, first)
    name: str | None = None

    computes: ClassVar[bool] = False     # weights and bias: an activation must follow (unless it ends a head)
    activation: ClassVar[bool] = False   # quantises the accumulator of the compute layer before it
    folds_into_previous: ClassVar[bool] = False  # trained in float, folded into the compute layer before it
    classifier: ClassVar[bool] = False   # may end a head: its outputs are the logits
    act_bits: ClassVar[bool] = False     # its `bits` default to quant.act_bits (else quant.weight_bits)
    torch_class: ClassVar[str]           # dotted path of the module it becomes
    ir_kind: ClassVar[type | None] = None  # the stage IR kind its trained module is exported as

    def out_shape(self, shape: tuple[int, ...], num_classes: int, where: str) -> tuple[int, ...]:
        return shape

    def torch_module(self, plan: LayerPlan, raw_output: bool, folded: bool) -> TorchModule:
        raise NotImplementedError


def spec_type(cls: type[LayerSpec]) -> str:
    """The `type:` a config layer of this class gives."""
    return typing.get_args(cls.model_fields["type"].annotation)[0]
