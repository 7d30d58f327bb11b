"""Every RTL module passes `verilator --lint-only -Wall` (each waiver carries a
comment saying why) and yosys elaborates it (when yosys is installed); the
build cache skips a repeated build."""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from sim import lint
from sim.rtl import axis_ports, build_module, rtl_deps, rtl_dir, rtl_sources

# parameter sets that reach every generate branch
VARIANTS: list[tuple[str, dict]] = [(m, {}) for m in rtl_deps()] + [
    ("cs_mvu", dict(HAS_ACT=0, IN_SIGNED=1, PE=8, SIMD=16, ROM_BLOCK=1)),
    ("cs_mvu", dict(SHIFT=-3, PE=1, SIMD=1)),
    ("cs_conv", dict(PH=1, PW=1, SH=2, SW=2)),
    ("cs_conv", dict(IC=2, SIMD=6, PH=1, PW=1, SH=2, SW=2)),  # parallel window: KP = 3
    ("cs_swu", dict(IC=1, KH=5, KW=5, SIMD=25)),               # whole window per beat
    ("cs_cond_buffer", dict(DEPTH=1, BEATS=1)),
    ("cs_cond_buffer", dict(DEPTH=9, BEATS=288, WIDTH=12)),
    ("cs_cond_buffer", dict(DEPTH=64, BEATS=3, META_BITS=1)),
    ("cs_swu", dict(IC=1, IW=8, SIMD=9, IPB=4, PH=1, PW=1)),   # 4 input pixels per beat
    ("cs_conv", dict(IC=2, SIMD=2, IW=6, IPB=3, SH=2, SW=2)),  # 3 pixels per beat, KP = 1
    ("cs_width_converter", dict(IN_LANES=4, OUT_LANES=2)),
    ("cs_width_converter", dict(IN_LANES=2, OUT_LANES=3)),
    ("cs_width_converter", dict(IN_LANES=3, OUT_LANES=3)),
    *[("cs_threshold_unit", dict(POLICY=p)) for p in (1, 2, 3)],
    *[("cs_threshold_pipe", dict(POLICY=p, C=c)) for p in (1, 2, 3) for c in (3, 10)],
]


@pytest.mark.parametrize("top,params", VARIANTS, ids=[f"{m}-{i}" for i, (m, _) in enumerate(VARIANTS)])
def test_verilator_lint_wall_clean(top: str, params: dict) -> None:
    proc = lint(top, rtl_sources(top), params)
    assert proc.returncode == 0, proc.stderr
    assert "%Warning" not in proc.stderr, proc.stderr


def test_every_waiver_is_explained() -> None:
    for path in sorted(rtl_dir().glob("*.v")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "lint_off" in line:
                before = lines[i - 1].strip() if i else ""
                assert before.startswith("//") or "lint_off" in before, f"{path.name}:{i + 1}: waiver without a reason"


def test_one_module_per_file_and_no_delays() -> None:
    for path in sorted(rtl_dir().glob("*.v")):
        text = re.sub(r"//.*", "", path.read_text())
        assert re.findall(r"^\s*module\s+(\w+)", text, re.M) == [path.stem], path.name
        assert not re.search(r"#\s*\d", text), f"{path.name}: delay"
        for m in re.finditer(r"\binitial\b(.*)", text):
            assert "$readmemh" in m.group(1), f"{path.name}: initial block other than a ROM init"


@pytest.mark.needs("yosys")
def test_yosys_elaborates_every_module(tmp_path: Path) -> None:
    # ROM init files must exist for yosys to elaborate $readmemh
    for name in ("weights.hex", "bias.hex", "rom.hex", "exp.hex", "log.hex"):
        (tmp_path / name).write_text("0\n")
    for top in rtl_deps():
        files = " ".join(str(p) for p in rtl_sources(top))
        script = f"read_verilog -sv {files}; hierarchy -check -top {top}; proc; opt -fast"
        proc = subprocess.run(["yosys", "-q", "-p", script], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, f"{top}: {proc.stderr[-2000:]}"


@pytest.mark.needs("yosys")
def test_yosys_elaborates_parallel_window(tmp_path: Path) -> None:
    # cs_swu's KP read lanes (generate block reading the line buffer), inside cs_conv
    for name in ("weights.hex", "bias.hex", "rom.hex"):
        (tmp_path / name).write_text("0\n")
    files = " ".join(str(p) for p in rtl_sources("cs_conv"))
    # and IPB pixels per input beat (the word select after each lane's read)
    for chparams in ("-set IC 2 -set SIMD 6 -set PH 1 -set PW 1",
                     "-set IC 1 -set SIMD 9 -set IPB 2 -set PH 1 -set PW 1"):
        script = (f"read_verilog -sv {files}; chparam {chparams} cs_conv; "
                  "hierarchy -check -top cs_conv; proc; opt -fast")
        proc = subprocess.run(["yosys", "-q", "-p", script], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]


def test_build_cache_skips_a_repeated_build() -> None:
    ports = axis_ports(8, 8)
    first = build_module("cs_fifo", ports, dict(WIDTH=8, DEPTH=5))
    t = time.perf_counter()
    again = build_module("cs_fifo", ports, dict(WIDTH=8, DEPTH=5))
    assert again == first and time.perf_counter() - t < 1.0
