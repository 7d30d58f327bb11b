"""The layer-kind registry: one module per kind of the stage IR owns its fields, semantics,
foldings, cycles, costs, RTL unit and front-end mapping (docs/architecture.md, "Add a layer kind").
Walks iterate these tables and ask each layer; nothing outside this package names a kind."""
from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from stage_ir.kinds.base import LayerKind, RtlUnit, kind_name
from stage_ir.kinds.batchnorm import BatchNormSpec
from stage_ir.kinds.conv2d import Conv2dLayer, Conv2dSpec
from stage_ir.kinds.dense import DenseLayer, LinearSpec
from stage_ir.kinds.flatten import FlattenLayer, FlattenSpec
from stage_ir.kinds.matrix import MatrixGeometry, MatrixLayer, divisors, legal_simds
from stage_ir.kinds.maxpool2d import MaxPool2dLayer, MaxPoolSpec
from stage_ir.kinds.relu import ReluSpec
from stage_ir.kinds.spec import LayerPlan, LayerSpec, Quant, StrictConfig, TorchModule, spec_type

# ---- the stage IR's layer kinds (design.json)
_KIND_CLASSES: tuple[type[LayerKind], ...] = (DenseLayer, Conv2dLayer, MaxPool2dLayer, FlattenLayer)
KINDS: dict[str, type[LayerKind]] = {kind_name(cls): cls for cls in _KIND_CLASSES}
# a layer of design.json, parsed into its kind's class by its "kind" key
Layer = Annotated[Union[_KIND_CLASSES], Field(discriminator="kind")]
# ---- the config's layer types (config.yaml's model lists; relu and batchnorm have no IR layer)
_SPEC_CLASSES: tuple[type[LayerSpec], ...] = (LinearSpec, Conv2dSpec, BatchNormSpec, ReluSpec, MaxPoolSpec, FlattenSpec)
SPECS: dict[str, type[LayerSpec]] = {spec_type(cls): cls for cls in _SPEC_CLASSES}
ConfigLayer = Annotated[Union[_SPEC_CLASSES], Field(discriminator="type")]
# the trained module (class name) each IR kind is exported from: its config type's module
KIND_OF_TORCH: dict[str, type[LayerKind]] = {cls.torch_class.rsplit(".", 1)[-1]: cls.ir_kind
                                             for cls in _SPEC_CLASSES if cls.ir_kind is not None}


def spec_names(**flags: bool) -> list[str]:
    """Config layer types whose class flags (LayerSpec.computes, ...) have the given values."""
    return [name for name, cls in SPECS.items() if all(getattr(cls, f) == v for f, v in flags.items())]


__all__ = ["KINDS", "KIND_OF_TORCH", "Layer", "LayerKind", "RtlUnit", "MatrixGeometry", "MatrixLayer", "divisors",
           "legal_simds", "DenseLayer", "Conv2dLayer", "MaxPool2dLayer", "FlattenLayer", "SPECS", "ConfigLayer",
           "LayerPlan", "LayerSpec", "Quant", "StrictConfig", "TorchModule", "kind_name", "spec_names"]
