"""The RTL module library (templates/rtl) seen from Python: file lookup,
dependencies, and the data layouts the modules expect (lane packing, ROM
init files).  The full-design generator and the unit tests share these."""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Sequence

from stage_ir.kinds.rom import pack


def rtl_dir() -> Path:
    """templates/rtl in a source tree, codesign/templates/rtl when installed."""
    here = Path(__file__).resolve().parent.parent / "templates" / "rtl"
    if here.is_dir():
        return here
    import importlib.resources

    return Path(str(importlib.resources.files("codesign.templates") / "rtl"))


# a library module instantiated inside another: `cs_name #(` or `cs_name u_inst (`
_INSTANCE = re.compile(r"^\s*(cs_\w+)\s*(?:#\s*\(|\w+\s*\()", re.M)
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


@functools.lru_cache(maxsize=None)
def rtl_deps() -> dict[str, tuple[str, ...]]:
    """Library module -> the library modules it instantiates, in the order its source does (one
    module per file, file = name + ".v"): read from the Verilog, so a new module needs no table."""
    out = {}
    for path in sorted(rtl_dir().glob("cs_*.v")):
        found = _INSTANCE.findall(_COMMENT.sub("", path.read_text()))
        out[path.stem] = tuple(dict.fromkeys(m for m in found if m != path.stem))
    return out


def rtl_sources(*tops: str) -> list[Path]:
    """Verilog files of `tops` and everything they instantiate, each once."""
    seen: list[str] = []
    deps = rtl_deps()

    def visit(m: str) -> None:
        if m in seen:
            return
        for d in deps[m]:
            visit(d)
        seen.append(m)

    for t in tops:
        visit(t)
    return [rtl_dir() / f"{m}.v" for m in seen]


def unpack(word: int, lanes: int, bits: int, signed: bool = False) -> list[int]:
    """One beat -> lanes (inverse of `pack`)."""
    mask = (1 << bits) - 1
    out = []
    for i in range(lanes):
        v = (word >> (i * bits)) & mask
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return out


def beats(values: Sequence[int], lanes: int, bits: int) -> list[int]:
    """A flat element stream -> beats of `lanes` elements."""
    assert len(values) % lanes == 0, "stream length must be a multiple of the lanes"
    return [pack(values[i:i + lanes], bits) for i in range(0, len(values), lanes)]


def unbeats(words: Sequence[int], lanes: int, bits: int, signed: bool = False) -> list[int]:
    """Beats -> flat element stream (inverse of `beats`)."""
    return [v for w in words for v in unpack(w, lanes, bits, signed)]


def axis_ports(in_bits: int, out_bits: int, statics: Sequence[str] = ()) -> "TopPorts":
    """Ports of a library module with one `in_*` and one `out_*` stream."""
    from sim.build import Stream, TopPorts

    return TopPorts([Stream.axis("in", in_bits)], [Stream.axis("out", out_bits)], tuple(statics))


def build_module(top: str, ports: "TopPorts", params: dict[str, int | str] | None = None, **kw) -> Path:
    """Build a library module (with its dependencies) as the simulation top."""
    from sim.build import build

    return build(top, rtl_sources(top), ports, params, **kw)
