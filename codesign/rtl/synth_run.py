"""`codesign synth RUN`: yosys synth_xilinx of RUN/rtl, per stage and for the top, against hw_models.

One yosys run per design: the generated top is synthesised *with its
hierarchy kept* (`synth_xilinx` without `-flatten`), `stat -json` gives the
cells of every (parameterised) module, and the top module's own netlist names
the module behind each instance.  An instance's count is its module's cells
plus, recursively, those of its submodules; instances are attributed to a
stage by name (`u_<layer>*` by the manifest's layer -> stage map,
`u_stage<k>_*`, `u_exit<k>_*`, `u_buffer<k>*` to stage k, the tagger to stage
0, the exit merge to the last stage, as hw_models does).  Cells of the top
module itself (glue: clock buffer, a few LUTs) count in `top` only.

Keeping the hierarchy forbids optimisation across instance boundaries (e.g.
an MVU output bit nobody reads is still built), so figures may be above what
a flattened synthesis would give (not compared).  BRAM is reported in 36 Kb tiles (an 18 Kb
half counts 0.5), like hw_models and Vivado.
"""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from stage_ir.errors import UserError
from codesign.store.timings import write_json
from codesign.rtl.yosys import require_yosys

SYNTH_FILE = "synth.json"
RESOURCES = ("lut", "ff", "dsp", "bram", "carry")
MODEL_RESOURCES = ("lut", "ff", "dsp", "bram")


def _counts(cells: dict[str, int]) -> dict[str, float]:
    from codesign.rtl.yosys import count_cells

    c = count_cells(cells)
    return {"lut": c["lut"], "ff": c["ff"], "dsp": c["dsp"], "bram": c["bram"] / 2.0, "carry": c["carry"],
            "lutram": c["lutram"]}


def _modules_from_stat(text: str) -> dict[str, dict[str, int]]:
    """Per-module cell histograms from yosys 0.23 `stat -json` (its `design` section is not JSON with hierarchy)."""
    start = text.index('"modules"')
    start = text.index("{", start)
    mods, _ = json.JSONDecoder().raw_decode(text, start)
    return {name: dict(m.get("num_cells_by_type", {})) for name, m in mods.items()}


def _expand(module: str, mods: dict[str, dict[str, int]], memo: dict[str, dict[str, int]]) -> dict[str, int]:
    """Primitive cell histogram of a module including its submodules."""
    if module in memo:
        return memo[module]
    out: dict[str, int] = {}
    for cell, n in mods.get(module, {}).items():
        sub = _module_key(cell, mods)
        if sub is not None:
            for c, m in _expand(sub, mods, memo).items():
                out[c] = out.get(c, 0) + n * m
        else:
            out[cell] = out.get(cell, 0) + n
    memo[module] = out
    return out


def _module_key(cell_type: str, mods: dict[str, Any]) -> str | None:
    for key in (cell_type, cell_type.lstrip("\\"), "\\" + cell_type):
        if key in mods:
            return key
    return None


def stage_of_instance(name: str, layer_stage: dict[str, int], n_stages: int) -> int | None:
    """Stage index of a top-level instance (None: unknown, counted in the top only)."""
    base = name[2:] if name.startswith("u_") else name
    m = re.match(r"(?:stage|exit|buffer)(\d+)(?:_|$)", base)
    if m:
        return int(m.group(1))
    if base == "tagger":
        return 0
    if base == "merge":
        return n_stages - 1
    for layer in sorted(layer_stage, key=len, reverse=True):
        if base == layer or base.startswith(layer + "_"):
            return layer_stage[layer]
    return None


def run_yosys(rtl_dir: Path, sources: list[str], top: str, family: str = "xc7", timeout: int = 3600
              ) -> tuple[dict[str, dict[str, int]], dict[str, str], dict[str, int], float]:
    """(per-module cells, top's instance -> module, top module's own cells, seconds)."""
    yosys = require_yosys()
    with tempfile.TemporaryDirectory() as tmp:
        stat, net = Path(tmp) / "stat.json", Path(tmp) / "top.v"
        reads = "\n".join(f"read_verilog -defer -sv {(rtl_dir / s).resolve()}" for s in sources)
        script = Path(tmp) / "synth.ys"
        script.write_text(f"{reads}\nsynth_xilinx -noiopad -family {family} -top {top}\n"
                          f"tee -q -o {stat} stat -json\nselect {top}\nwrite_verilog -selected -noattr {net}\n")
        started = time.perf_counter()
        proc = subprocess.run([yosys, "-q", "-s", str(script)], cwd=rtl_dir, capture_output=True, text=True,
                              timeout=timeout)
        seconds = time.perf_counter() - started
        if proc.returncode != 0 or not stat.is_file() or not net.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"yosys failed on {top}: {' | '.join(tail)}")
        mods = _modules_from_stat(stat.read_text())
        inst = instances_of(net.read_text())
    top_key = _module_key(top, mods) or top
    own = {t: n for t, n in mods.get(top_key, {}).items() if _module_key(t, mods) is None}
    return mods, inst, own, seconds


_INSTANCE = re.compile(r"^\s*(\\\S+|[A-Za-z_]\w*)\s+(u_\w+)\s*\(", re.M)


def instances_of(verilog: str) -> dict[str, str]:
    """Instance name -> module of the top's `u_*` instances in yosys' write_verilog output."""
    return {name: mtype.lstrip("\\") for mtype, name in _INSTANCE.findall(verilog)}


def _error(measured: float, model: float) -> float | None:
    if measured == 0:
        return None if model == 0 else float("inf")
    return (model - measured) / measured


def synth_run(run: Path, family: str = "xc7", write: bool = True) -> dict[str, Any]:
    """Synthesise RUN/rtl with yosys; per-stage and top LUT/FF/DSP/BRAM/CARRY vs hw_models -> RUN/synth.json."""
    from codesign.design import ir
    from codesign.rtl import MANIFEST, RTL_DIR, load_manifest

    run = Path(run)
    require_yosys()
    if not (run / RTL_DIR / MANIFEST).is_file():
        raise UserError(f"{run}/rtl not generated; run `codesign rtl {run}` first")
    man = load_manifest(run)
    design = ir.load_design(run)
    n_stages = len(design.stages)
    mods, inst, own, seconds = run_yosys(run / RTL_DIR, man["sources"], man["top"], family)
    memo: dict[str, dict[str, int]] = {}
    layer_stage = {l["name"]: int(l["stage"]) for l in man["layers"]}
    stage_cells: list[dict[str, int]] = [{} for _ in range(n_stages)]
    instances = []
    unassigned: dict[str, int] = {}
    for name, mtype in sorted(inst.items()):
        key = _module_key(mtype, mods)
        cells = _expand(key, mods, memo) if key else {mtype: 1}
        k = stage_of_instance(name, layer_stage, n_stages)
        target = stage_cells[k] if k is not None else unassigned
        for c, n in cells.items():
            target[c] = target.get(c, 0) + n
        instances.append({"name": name, "module": re.sub(r"^.*\\", "", mtype.lstrip("\\")), "stage": k,
                          **{r: v for r, v in _counts(cells).items() if r in RESOURCES}})
    top_cells = dict(own)
    for cells in stage_cells + [unassigned]:
        for c, n in cells.items():
            top_cells[c] = top_cells.get(c, 0) + n
    stages = []
    for k, cells in enumerate(stage_cells):
        meas = _counts(cells)
        stages.append({"index": k, **{r: meas[r] for r in RESOURCES}, "lutram": meas["lutram"]})
    top_meas = _counts(top_cells)
    result = {
        "top": {"module": man["top"], **{r: top_meas[r] for r in RESOURCES}, "lutram": top_meas["lutram"],
                "glue": {r: v for r, v in _counts(own).items() if r in RESOURCES}},
        "stages": stages,
        "instances": instances,
        "family": family,
        "method": "yosys synth_xilinx -noiopad (hierarchy kept), stat -json per module, instances summed per stage",
        "units": {"bram": "36 Kb tiles (18 Kb half = 0.5)"},
        "yosys_seconds": round(seconds, 2),
        "command": f"codesign synth RUN --family {family}",
    }
    with_model(result, design)
    if write:
        write_json(run / SYNTH_FILE, result)
    return result


def with_model(result: dict[str, Any], design: Any) -> dict[str, Any]:
    """(Re)compute `model` and `error` of every stage and the top from hw_models (current coefficients)."""
    from hw_models import estimate

    est = estimate(design, [design.device], _fractions(design))
    for k, st in enumerate(result["stages"]):
        st["model"] = {r: float(est["stages"][k][r]) for r in MODEL_RESOURCES}
        st["error"] = {r: _error(st[r], st["model"][r]) for r in MODEL_RESOURCES}
    top = result["top"]
    top["model"] = {r: float(sum(s["model"][r] for s in result["stages"])) for r in MODEL_RESOURCES}
    top["error"] = {r: _error(top[r], top["model"][r]) for r in MODEL_RESOURCES}
    return result


def _fractions(design: Any) -> list[float]:
    """Exit fractions for the estimate call (resources do not depend on them)."""
    k = design.num_exits
    return [1.0 / k] * k
