"""The YAML run configuration, validated with pydantic.

pydantic gives typed defaults, unknown-key rejection and per-field messages
for free; `load_config` turns its first error into one line for the CLI.
Everything a config alone can get wrong is refused here, before any training:
finite numbers, a seed numpy and torch accept, a name usable in generated HDL,
a known device. What needs the data files or another run is checked by
`codesign.frontend.train.check_inputs`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from codesign.frontend.yamlio import read_yaml
from stage_ir.errors import UserError
from stage_ir.kinds import ConfigLayer, LinearSpec
from stage_ir.kinds.spec import BITS, StrictConfig as _Strict
from stage_ir.policies import DEFAULT as DEFAULT_POLICY, POLICIES

class ExitSpec(_Strict):
    after: int | str = Field(description="backbone layer (0-based index or name) after which this exit sits")
    head: list[ConfigLayer] | None = Field(None, min_length=1, description="exit head; default model.exit_head")
    weight: float = Field(1.0, ge=0.0, description="loss weight w_i of this exit")


class ModelSpec(_Strict):
    backbone: list[ConfigLayer] = Field(min_length=1, description="the main network, a list of layers; exits attach after any of them")
    exits: list[ExitSpec] = Field(default_factory=list, description="early exits, in backbone order")
    exit_head: list[ConfigLayer] = Field(
        default_factory=lambda: [LinearSpec(type="linear")], min_length=1,
        description="head used by every exit that does not give its own",
    )
    classifier: list[ConfigLayer] = Field(
        default_factory=lambda: [LinearSpec(type="linear")], min_length=1, description="final classifier after the backbone"
    )
    final_weight: float = Field(1.0, ge=0.0, description="loss weight of the final exit")


class SyntheticSpec(_Strict):
    samples: int = Field(800, ge=40, le=1_000_000, description="number of samples")
    shape: list[int] = Field(default_factory=lambda: [1, 4, 4], description="sample shape [C, H, W] or [N], sizes 1..1024")
    classes: int = Field(4, ge=2, description="number of classes")

    @field_validator("shape")
    @classmethod
    def _shape(cls, shape: list[int]) -> list[int]:
        if len(shape) not in (1, 3) or not all(1 <= n <= 1024 for n in shape):
            raise ValueError(f"give [C, H, W] (images) or [N] (vectors) of sizes 1..1024, not {shape}")
        return shape


PATH_DATASETS = ("mnist", "fashion-mnist", "npz", "folder")


class DataSpec(_Strict):
    dataset: Literal["digits", "mnist", "fashion-mnist", "synthetic", "npz", "folder"] = Field("digits", description="digits is embedded; mnist and fashion-mnist need `make data` or data.path; npz and folder are your own (docs/getting-started.md): an .npz of x_train, y_train, x_test, y_test (optional x_val, y_val), or a folder of class sub-folders of PNG/JPEG images (optionally under train/, test/, val/)")
    path: str | None = Field(None, description="folder or file of the data set (mnist, fashion-mnist; the .npz file of npz; the image folder of folder)")
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5, description="part of the training data held out for calibration")
    test_fraction: float = Field(0.25, gt=0.0, lt=0.5, description="for data sets without a fixed test split")
    limit_train: int | None = Field(None, ge=10, description="use at most this many training samples")
    synthetic: SyntheticSpec = Field(default_factory=SyntheticSpec)

    @model_validator(mode="after")
    def _path_is_read(self) -> "DataSpec":
        if self.path is not None and self.dataset not in PATH_DATASETS:
            raise ValueError(f"path is read only by the {', '.join(PATH_DATASETS[:-1])} and {PATH_DATASETS[-1]} data "
                             f"sets, not by {self.dataset}; remove path or set dataset")
        if self.path is None and self.dataset in ("npz", "folder"):
            raise ValueError(f"dataset {self.dataset} reads the {'.npz file' if self.dataset == 'npz' else 'image folder'} "
                             "data.path names; set data.path")
        return self


class QuantSpec(_Strict):
    weight_bits: BITS = 4
    act_bits: BITS = 4


class DistillSpec(_Strict):
    temperature: float = Field(3.0, gt=0.0, description="softening temperature T")
    alpha: float = Field(0.5, ge=0.0, description="weight of the KL term")
    teacher: Literal["final", "next"] = Field("final", description="teacher of each early exit: the final exit or the next exit")


class TrainSpec(_Strict):
    mode: Literal["end_to_end", "ic_only", "distillation"] = Field("end_to_end", description="joint loss; exit heads only on a frozen backbone; or joint loss plus distillation")
    epochs: int = Field(30, ge=1, le=1000, description="training epochs (ic_only: epochs of the exit heads)")
    backbone_epochs: int = Field(30, ge=1, le=1000, description="ic_only: epochs for backbone + final exit")
    backbone_from: str | None = Field(None, description="ic_only: a run folder whose model.pt is the frozen backbone")
    batch_size: int = Field(64, ge=1, description="mini-batch size")
    lr: float = Field(0.01, gt=0.0, description="Adam learning rate (cosine schedule)")
    weight_decay: float = Field(0.0, ge=0.0, description="Adam weight decay")
    distill: DistillSpec = Field(default_factory=DistillSpec)

    @model_validator(mode="after")
    def _backbone_from_ic_only(self) -> "TrainSpec":
        if self.backbone_from is not None and self.mode != "ic_only":
            raise ValueError(f"backbone_from is used only with mode ic_only, not {self.mode}; remove it "
                             "or set mode: ic_only")
        return self


class PolicySpec(_Strict):
    kind: Literal[POLICIES] = Field(DEFAULT_POLICY, description="exit policy calibrated by the flow")
    accuracy_delta: float = Field(1.0, ge=-100.0, le=100.0, description="calibration: accuracy target in pp below the final exit")


class HardwareSpec(_Strict):
    device: str = Field("xc7z020", description="target FPGA part (hw_models/devices.yaml)")
    clock_ns: float = Field(10.0, gt=0.0, description="design clock period")
    buffer_depth: int = Field(32, ge=1, le=4096, description="conditional buffer depth in samples")

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        from hw_models.devices import known_devices  # lazily: hw_models brings numpy and scipy

        names = known_devices()
        if device.lower() not in names:
            raise ValueError(f"unknown device {device!r}; use one of {', '.join(names)} (hw_models/devices.yaml; "
                             "for a part of your own pass --device-file and --device to codesign estimate or dse)")
        return device


IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


class Config(_Strict):
    name: str = Field("run", description="run name, used in reports and generated HDL names: a letter, then up to "
                                         "63 letters, digits or _")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of data splits, initialisation and shuffling "
                                                         "(0 .. 2**32-1, the range numpy accepts)")
    data: DataSpec = Field(default_factory=DataSpec)
    quant: QuantSpec = Field(default_factory=QuantSpec)
    model: ModelSpec
    train: TrainSpec = Field(default_factory=TrainSpec)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    hardware: HardwareSpec = Field(default_factory=HardwareSpec)

    @field_validator("name")
    @classmethod
    def _hdl_name(cls, name: str) -> str:
        # refused rather than sanitised: the name is the generated top's, the HLS namespace's and the
        # report's, and one spelling everywhere beats a silently different one in the Verilog
        if not IDENTIFIER.fullmatch(name):
            hint = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
            hint = (hint if hint[:1].isalpha() else f"run_{hint}")[:64].rstrip("_")
            raise ValueError(f"{name!r} cannot name generated HDL: use a letter, then up to 63 letters, digits "
                             f"or _ (e.g. {hint!r})")
        return name

    @model_validator(mode="after")
    def _exits_resolve(self) -> "Config":
        resolve_exit_positions(self)
        return self


def _layer_index(after: int | str, backbone: list) -> int:
    if isinstance(after, int):
        if not 0 <= after < len(backbone):
            raise ValueError(
                f"exit placed after backbone layer {after}, but the backbone has layers 0..{len(backbone) - 1}"
            )
        return after
    names = [layer.name for layer in backbone]
    if after not in names:
        known = ", ".join(n for n in names if n) or "none are named"
        raise ValueError(f"exit placed after unknown backbone layer {after!r} (named layers: {known})")
    return names.index(after)


def resolve_exit_positions(cfg: Config) -> list[int]:
    """Backbone indices after which each early exit sits, strictly increasing."""
    positions = [_layer_index(e.after, cfg.model.backbone) for e in cfg.model.exits]
    if positions != sorted(set(positions)):
        raise ValueError(f"exits must sit after distinct backbone layers in increasing order, got {positions}")
    for p in positions:
        spec = cfg.model.backbone[p]
        if spec.computes or spec.folds_into_previous:
            raise ValueError(
                f"exit after backbone layer {p} ({cfg.model.backbone[p].type}) would see an unquantised "
                "accumulator; place it after the relu that follows"
            )
    return positions


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{loc}: {msg}{more}" if loc else f"{msg}{more}"


def parse_config(data: object, source: str = "config") -> Config:
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of keys at the top level; see examples/digits_mlp.yaml")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise UserError(f"{source}: {_one_line(err)}") from None


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config; every problem becomes one UserError line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found; give the path of a YAML config such as examples/digits_mlp.yaml")
    data = read_yaml(path, "config", "see examples/digits_mlp.yaml")
    return parse_config(data, str(path))


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


# the parts of a config that decide the trained model: the train step is tracked by these, and
# model.pt records them (its bytes do not change with the hardware or policy sections)
TRAINING_SECTIONS = ("seed", "data", "quant", "model", "train")


def training_sections(cfg: Config) -> dict:
    dump = cfg.model_dump(mode="json")
    return {s: dump[s] for s in TRAINING_SECTIONS}
