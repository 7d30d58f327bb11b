"""The layer-kind registry: one module per kind of the stage IR owns its fields, semantics,
foldings, cycles and costs (docs/architecture.md, "Add a layer kind"). Walks iterate KINDS and ask
each layer; nothing outside this package names a kind."""
from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from stage_ir.kinds.base import LayerKind
from stage_ir.kinds.conv2d import Conv2dLayer
from stage_ir.kinds.dense import DenseLayer
from stage_ir.kinds.flatten import FlattenLayer
from stage_ir.kinds.matrix import MatrixGeometry, MatrixLayer, divisors, legal_simds
from stage_ir.kinds.maxpool2d import MaxPool2dLayer

_CLASSES: tuple[type[LayerKind], ...] = (DenseLayer, Conv2dLayer, MaxPool2dLayer, FlattenLayer)
KINDS: dict[str, type[LayerKind]] = {cls.model_fields["kind"].default: cls for cls in _CLASSES}
# a layer of design.json, parsed into its kind's class by its "kind" key
Layer = Annotated[Union[_CLASSES], Field(discriminator="kind")]

__all__ = ["KINDS", "Layer", "LayerKind", "MatrixGeometry", "MatrixLayer", "divisors", "legal_simds",
           "DenseLayer", "Conv2dLayer", "MaxPool2dLayer", "FlattenLayer"]
