"""The stage IR (RUN/design.json): its typed schema and the checks of the arrays it refers to.

docs/ir.md describes it; codesign.design.ir reads and writes it in a run folder, every back end and hw_models
take the typed `Design` this module defines.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from stage_ir.errors import UserError
from stage_ir.kinds import Layer, LayerKind, MatrixLayer
from stage_ir.policies import ARGMAX, POLICIES
from stage_ir.tensors import IRModel, TensorSpec

SCHEMA = 1
DESIGN_FILE = "design.json"
# the stage IR as `codesign export` wrote it: every exit, fully folded, no policy; calibrate and
# dse start from it, so a design.json the DSE reduced never hides the rest of the network
EXPORTED_FILE = "export/design.json"


THRESHOLD_FORMS = ("sequential", "pipelined")


class StageHardware(IRModel):
    """The hardware decisions of one stage that are not a layer's folding (hw_models.decisions
    writes them from the DSE's choice or the defaults; the RTL generator and the cost model read
    them as written)."""

    # cs_threshold_unit (C + 1 cycles per sample per pass) or cs_threshold_pipe (II = 1)
    threshold_form: Literal[THRESHOLD_FORMS]
    # entries of the FIFO holding exit k's decisions in front of its conditional buffer (early
    # exits only): a decision may arrive while its sample is still entering the buffer
    decision_fifo_depth: int | None = Field(None, ge=1)


class Stage(IRModel):
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
    # None until decided (RUN/export/design.json); every RUN/design.json has them
    hardware: StageHardware | None = None

    @model_validator(mode="after")
    def _default_export_stages(self) -> "Stage":
        if not self.export_stages:  # written before the field existed: the stage is its own export
            self.export_stages = [self.index]
        return self

    @property
    def all_layers(self) -> list[LayerKind]:
        return [*self.layers, *self.head]


def input_layer(stages: list[Stage]) -> LayerKind | None:
    """The layer the top's s_axis feeds: the network's first layer with hardware (a flatten has
    none), the only one that may read several input pixels per beat."""
    return next((layer for stage in stages for layer in stage.all_layers if layer.hardware), None)


class Policy(IRModel):
    kind: Literal[POLICIES]
    thresholds: list[int]
    tables: dict[str, Any] = Field(default_factory=dict)
    float_thresholds: list[float] = Field(default_factory=list)


class Design(IRModel):
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
        # the one home of a buffer's depth: every back end and model reads it, none assumes one
        missing = [st.index for st in self.stages[:-1] if st.buffer_depth is None]
        if missing:
            raise ValueError(f"stages {missing} end in an early exit but give no buffer_depth (its conditional "
                             "buffer's samples)")
        if self.policy is not None and len(self.policy.thresholds) != len(self.stages) - 1:
            raise ValueError(f"policy has {len(self.policy.thresholds)} thresholds for {len(self.stages) - 1} early exits")
        self._check_decisions()
        return self

    def _check_decisions(self) -> None:
        """Hardware decisions are all there or none is, and each is one the hardware can build."""
        decided = [st.hardware is not None for st in self.stages]
        if any(decided) and not all(decided):
            raise ValueError(f"stages {[i for i, d in enumerate(decided) if not d]} have no hardware decisions but "
                             "others do; decide the design as a whole (hw_models.decide)")
        for st in self.stages:
            early = st.index < len(self.stages) - 1
            if st.hardware is not None and (st.hardware.decision_fifo_depth is not None) != early:
                raise ValueError(f"stage {st.index}: decision_fifo_depth belongs to early exits only "
                                 f"(the stage {'is' if early else 'is not'} one)")
        first = input_layer(self.stages)
        for layer in self.layers():
            ipb = getattr(getattr(layer, "folding", None), "pixels_per_beat", 1)
            problem = (layer.pixels_per_beat_problem(ipb) if layer is first and layer.computes else
                       None if ipb == 1 else f"pixels_per_beat {ipb}: only the network's first layer reads "
                                             "several pixels per beat")
            if problem:
                raise ValueError(f"layer {layer.name}: {problem}")

    @property
    def decided(self) -> bool:
        """Its hardware decisions are written in (hw_models.decide); the back ends need them."""
        return self.stages[0].hardware is not None

    @property
    def num_exits(self) -> int:
        return len(self.stages)

    def exit_unit(self, k: int) -> tuple[str, dict[str, Any]]:
        """(policy, table) of exit k's threshold unit: the design's policy and exit k's table
        (policies.make_tables: {"exits": [one per early exit]}; {} before calibration), or the
        argmax with no table for the final exit and for a design without a policy."""
        pol = self.policy
        if pol is None or k == self.num_exits - 1:
            return ARGMAX, {}
        exits = pol.tables.get("exits") or []
        return pol.kind, exits[k] if 0 <= k < len(exits) else {}

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
            owner = next((l for l in self.layers() if isinstance(l, MatrixLayer) and rel in (l.weight, l.bias)), None)
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

    def layers(self) -> list[LayerKind]:
        return [layer for stage in self.stages for layer in stage.all_layers]

    def layer(self, name: str) -> LayerKind:
        for layer in self.layers():
            if layer.name == name:
                return layer
        raise UserError(f"design.json has no layer {name!r}")

    def as_dict(self) -> dict[str, Any]:
        """The plain JSON-shaped dict of design.json (what the numpy-only hw_models take)."""
        return self.model_dump(mode="json", by_alias=True)

    def dump(self) -> str:
        return json.dumps(self.as_dict(), indent=1, sort_keys=False) + "\n"
