"""FPGA part database: resource totals and a default clock per part."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import yaml

from stage_ir.errors import UserError

_DATA = Path(__file__).with_name("devices.yaml")
RESOURCES = ("lut", "ff", "dsp", "bram")


@dataclass(frozen=True)
class Device:
    name: str
    family: str
    lut: int
    ff: int
    dsp: int
    bram36: int
    uram: int
    clock_ns: float

    @property
    def bram(self) -> float:
        """Block RAM in 36 Kb tiles (an 18 Kb half counts 0.5, as Vivado reports)."""
        return float(self.bram36)

    @property
    def bram18(self) -> int:
        return 2 * self.bram36

    def totals(self) -> dict[str, float]:
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram": self.bram}


_registry: dict[str, Device] = {}


class _Entry(BaseModel):
    """One part of a device file, as the data sheet gives it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    family: str = "xc7"
    lut: int = Field(gt=0)
    ff: int = Field(gt=0)
    dsp: int = Field(ge=0)
    bram36: int = Field(ge=0)
    uram: int = Field(0, ge=0)
    clock_ns: float = Field(10.0, gt=0)


def _parse(name: str, entry: object, source: str) -> Device:
    if not isinstance(entry, dict):
        raise UserError(f"device {name!r} in {source} is not a mapping; give lut, ff, dsp, bram36, uram, clock_ns")
    try:
        return Device(name=name, **_Entry.model_validate(entry).model_dump())
    except ValidationError as err:
        missing = [str(e["loc"][0]) for e in err.errors() if e["type"] == "missing"]
        if missing:
            raise UserError(f"device {name!r} in {source} lacks {', '.join(missing)}; add them (totals from the "
                            "data sheet)") from None
        first = err.errors()[0]
        raise UserError(f"device {name!r} in {source}: {'.'.join(map(str, first['loc']))}: {first['msg']}; give "
                        "the data sheet's totals as plain numbers (format of hw_models/devices.yaml)") from None


# how to write a device file (the reader of the user's YAML, codesign.frontend.yamlio, names it in its errors)
DEVICE_FILE_FIX = "write `part: {lut: .., ff: .., dsp: .., bram36: ..}` as in hw_models/devices.yaml"


def _parse_all(data: object, source: str) -> dict[str, Device]:
    if not isinstance(data, dict) or not data:
        raise UserError(f"device file {source} holds no devices; write `part: {{lut: .., ff: .., dsp: .., bram36: ..}}`")
    return {str(k).lower(): _parse(str(k).lower(), v, source) for k, v in data.items()}


def known_devices() -> list[str]:
    if not _registry:
        _registry.update(_parse_all(yaml.safe_load(_DATA.read_text()), str(_DATA)))
    return sorted(_registry)


def add_devices(data: object, source: str) -> list[str]:
    """Add the parts of a parsed device file (same format as devices.yaml); returns their names."""
    known_devices()
    added = _parse_all(data, source)
    _registry.update(added)
    return sorted(added)


def get_device(device: "str | Device") -> Device:
    """A Device by part name (case-insensitive); UserError names the known parts."""
    if isinstance(device, Device):
        return device
    names = known_devices()
    key = str(device).lower()
    if key not in _registry:
        raise UserError(f"unknown device {device!r}; use one of {', '.join(names)} or add it with a device YAML file")
    return _registry[key]
