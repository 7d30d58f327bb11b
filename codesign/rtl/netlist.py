"""The generated top as a small netlist (streams, instances, ports, assigns) rendered by one template."""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Wire:
    name: str
    width: int


@dataclasses.dataclass(frozen=True)
class Sig:
    """A valid/ready stream: `<name>_tdata/_tvalid/_tready`."""

    name: str
    width: int

    @property
    def data(self) -> str:
        return f"{self.name}_tdata"

    @property
    def valid(self) -> str:
        return f"{self.name}_tvalid"

    @property
    def ready(self) -> str:
        return f"{self.name}_tready"


@dataclasses.dataclass
class Inst:
    module: str
    name: str
    params: list[tuple[str, Any]]
    ports: list[tuple[str, str]]
    comment: str = ""
    waiver: tuple[str, str] | None = None  # (lint code, why)


@dataclasses.dataclass(frozen=True)
class TopPort:
    name: str
    direction: str
    width: int
    comment: str = ""


class Netlist:
    def __init__(self) -> None:
        self.ports: list[TopPort] = []
        self.wires: list[Wire] = []
        self.assigns: list[tuple[str, str]] = []
        self.instances: list[Inst] = []
        self.streams: list[dict[str, Any]] = []

    def stream(self, name: str, width: int, *, port: str | None = None, comment: str = "") -> Sig:
        """A stream: internal wires, or top ports when `port` is 'in' (slave) or 'out' (master)."""
        s = Sig(name, width)
        if port is None:
            self.wires += [Wire(s.data, width), Wire(s.valid, 1), Wire(s.ready, 1)]
        else:
            into, outof = ("input", "output") if port == "in" else ("output", "input")
            self.ports += [TopPort(s.data, into, width, comment), TopPort(s.valid, into, 1),
                           TopPort(s.ready, outof, 1)]
        self.streams.append({"name": name, "width": width})
        return s

    def wire(self, name: str, width: int) -> str:
        self.wires.append(Wire(name, width))
        return name

    def assign(self, lhs: str, rhs: str) -> None:
        self.assigns.append((lhs, rhs))

    def add(self, module: str, name: str, params: dict[str, Any], ports: list[tuple[str, str]], **kw: Any) -> None:
        self.instances.append(Inst(module, name, [(k, _vparam(v)) for k, v in params.items()], ports, **kw))


def _vparam(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else str(int(v))


def _clk() -> list[tuple[str, str]]:
    return [("clk", "clk"), ("rst", "rst")]


def _io(prefix: str, s: Sig) -> list[tuple[str, str]]:
    return [(f"{prefix}_tdata", s.data), (f"{prefix}_tvalid", s.valid), (f"{prefix}_tready", s.ready)]


def _clog2(n: int) -> int:
    return max(1, (n - 1).bit_length())


def _signed_bits(lo: int, hi: int) -> int:
    """Two's complement width holding every integer in [lo, hi]."""
    return max(int(lo).bit_length(), int(hi).bit_length()) + 1
