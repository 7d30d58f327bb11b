"""Reading a run's JSON artifacts: one reader, so a corrupt, truncated or wrong-shaped file is always one
line naming the file and the command that writes it again.

Each artifact has a shape: the keys its readers (summary, report, estimate, dse, evaluate, the back
ends) use, with their JSON types. Only those are checked (extra keys pass), strictly: "0.5" is not a
number, true is not an integer.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, ValidationError

from stage_ir.errors import UserError

Num = Union[StrictInt, StrictFloat]
Res = dict[str, Num]  # {lut, ff, dsp, bram}


class _Shape(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class _TrainExit(_Shape):
    index: int
    test_accuracy: Num
    train_accuracy: Num | None = None


class TrainJson(_Shape):
    exits: list[_TrainExit]
    mode: str


class _FractionExit(_Shape):
    exit_fraction: Num


class _Validation(_Shape):
    overall_accuracy: Num
    final_accuracy: Num
    exits: list[_FractionExit]


class PolicyJson(_Shape):
    kind: str
    thresholds: list[int]
    tables: dict[str, Any]
    float_thresholds: list[Num]
    validation: _Validation


class _EvalExit(_Shape):
    index: int
    exit_fraction: Num
    accuracy_alone: Num
    accuracy_of_exited: Num | None
    threshold: int | None


class _Overthinking(_Shape):
    correct_here_wrong_final: Num
    wrong_here_correct_final: Num


class _Agreement(_Shape):
    exit_index: Num


class EvalJson(_Shape):
    policy: str
    samples: int
    overall_accuracy: Num
    final_accuracy: Num
    mac_fraction: Num
    exits: list[_EvalExit]
    overthinking: list[_Overthinking]
    float_integer_agreement: _Agreement


class MismatchJson(_Shape):  # export/verify.json, hls/csim.json, rtl/verify.json
    samples: int
    mismatches: int


class _EstimateStage(_Shape):
    index: int
    ii_cycles: Num
    reach_fraction: Num
    lut: Num
    ff: Num
    dsp: Num
    bram: Num


class _Device(_Shape):
    lut: Num
    ff: Num
    dsp: Num
    bram: Num
    utilization: dict[str, Num | None]
    fits: bool
    throughput_samples_per_cycle: Num
    throughput_samples_per_second: Num


class EstimateJson(_Shape):
    backend: str
    note: str
    stages: list[_EstimateStage]
    devices: dict[str, _Device]


class _DsePoint(_Shape):
    throughput_samples_per_cycle: Num
    lut: Num
    ff: Num
    dsp: Num
    bram: Num
    accuracy: Num | None
    exits_kept: list[int]
    buffer_depths: list[int | None]
    folding: dict[str, Any]


class DseJson(_Shape):
    device: str
    budget: Num
    objective: str
    points_evaluated: int
    chosen: _DsePoint
    baseline: _DsePoint
    predicted_gain: Num
    rate_z: Num | None = None


class _Scoreboard(_Shape):
    lost: int
    duplicated: int
    altered: int


class SimJson(_Shape):
    samples: int
    cycles: int
    throughput_samples_per_cycle: Num
    predicted_throughput_samples_per_cycle: Num
    scoreboard: _Scoreboard
    measured_gain: Num | None = None


class SweepJson(_Shape):
    sweep: str
    points: list[dict[str, Any]]


class _SynthStage(_Shape):
    lut: Num
    ff: Num
    dsp: Num
    bram: Num
    model: Res


class SynthJson(_Shape):
    stages: list[_SynthStage]
    top: dict[str, Any]


class ManifestJson(_Shape):
    top: str
    sim_top: str
    sources: list[str]
    sim_sources: list[str]
    rom_files: list[str]
    ports: list[dict[str, Any]]
    layers: list[dict[str, Any]]
    exits: list[dict[str, Any]]
    fields: dict[str, Any]
    input: dict[str, Any]
    tag_bits: int
    num_exits: int
    num_classes: int


# artifact (relative to RUN) -> (the command that writes it, RUN standing for the run; its shape)
ARTIFACTS: dict[str, tuple[str, type[_Shape] | None]] = {
    "design.json": ("export {run}", None),  # codesign.design.ir validates the stage IR itself
    "export/design.json": ("export {run}", None),
    "train.json": ("train CONFIG.yaml --out {run} --force", TrainJson),
    "policy.json": ("calibrate {run}", PolicyJson),
    "eval.json": ("evaluate {run}", EvalJson),
    "export/verify.json": ("export {run}", MismatchJson),
    "hls/csim.json": ("hls {run} --csim", MismatchJson),
    "rtl/verify.json": ("rtl {run} --verify", MismatchJson),
    "rtl/manifest.json": ("rtl {run}", ManifestJson),
    "estimate.json": ("estimate {run}", EstimateJson),
    "dse.json": ("dse {run}", DseJson),
    "sim/data.json": ("sim {run}", SimJson),
    "sim/sweep.json": ("sim {run} --sweep SPEC", SweepJson),
    "synth.json": ("synth {run}", SynthJson),
}


def validation_message(err: ValidationError) -> str:
    """`where: what` of a pydantic error's first problem (one line)."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "top level"
    return f"{loc}: {first['msg']}"


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words (for messages)."""
    if isinstance(value, bool) or value is None:
        return f"JSON {json.dumps(value)}"
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number"}
    return f"a JSON {names[type(value)]}"


def read_artifact(run: str | Path, name: str, missing_ok: bool = False) -> Any:
    """RUN/name parsed and shape-checked (None if absent and `missing_ok`), or a UserError saying which
    command writes it again."""
    run = Path(run)
    command, shape = ARTIFACTS[name]
    step = command.format(run=run)
    path = run / name
    if not path.is_file():
        if missing_ok:
            return None
        raise UserError(f"{path} not found; run `codesign {step}` first")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path} is not valid JSON (not UTF-8 text); rerun `codesign {step}`") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}); rerun `codesign {step}`") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not valid: {json_kind(data)}, not an object; rerun `codesign {step}`")
    if shape is not None:
        try:
            shape.model_validate(data)
        except ValidationError as err:
            raise UserError(f"{path} is not valid ({validation_message(err)}); rerun `codesign {step}`") from None
    return data
