"""FPGA part database: resource totals and a default clock per part."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from codesign.errors import UserError

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


def _parse(name: str, entry: object, source: str) -> Device:
    if not isinstance(entry, dict):
        raise UserError(f"device {name!r} in {source} is not a mapping; give lut, ff, dsp, bram36, uram, clock_ns")
    missing = [k for k in ("lut", "ff", "dsp", "bram36") if k not in entry]
    if missing:
        raise UserError(f"device {name!r} in {source} lacks {', '.join(missing)}; add them (totals from the data sheet)")
    try:
        return Device(name=name, family=str(entry.get("family", "xc7")), lut=int(entry["lut"]),
                      ff=int(entry["ff"]), dsp=int(entry["dsp"]), bram36=int(entry["bram36"]),
                      uram=int(entry.get("uram", 0)), clock_ns=float(entry.get("clock_ns", 10.0)))
    except (TypeError, ValueError) as err:
        raise UserError(f"device {name!r} in {source} has a non-numeric total ({err}); use plain numbers") from None


def _load(path: Path) -> dict[str, Device]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"cannot read device file {path} ({err.__class__.__name__}); give a readable YAML file") from None
    if not isinstance(data, dict) or not data:
        raise UserError(f"device file {path} holds no devices; write `part: {{lut: .., ff: .., dsp: .., bram36: ..}}`")
    return {str(k).lower(): _parse(str(k).lower(), v, str(path)) for k, v in data.items()}


def known_devices() -> list[str]:
    if not _registry:
        _registry.update(_load(_DATA))
    return sorted(_registry)


def load_device_file(path: str | Path) -> list[str]:
    """Add the parts in a YAML file (same format as devices.yaml); returns their names."""
    known_devices()
    added = _load(Path(path))
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
