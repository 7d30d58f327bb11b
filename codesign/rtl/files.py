"""RUN/rtl/: the generated top, the library sources it needs, ROM files and manifest.json."""
from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

import stage_ir
from codesign.design import ir
from stage_ir import policies as pol
from stage_ir.errors import UserError
from codesign.rtl.netlist import _clog2
from codesign.rtl.top import GLUE, TAG_BITS, TopBuilder, top_name


RTL_DIR = "rtl"
MANIFEST = "manifest.json"
VERIFY = "verify.json"


def _env():
    import jinja2

    root = resources.files("codesign.templates") / "rtl" / "top"
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(root)), trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def require_design(run: Path) -> stage_ir.Design:
    """design.json with a usable policy (a single-exit design, e.g. the no-exit baseline, needs none)."""
    design = ir.load_design(run)
    if design.policy is None and design.num_exits >= 2:
        raise UserError(f"{Path(run) / 'design.json'} has no exit policy; run `codesign calibrate {run}` first")
    if design.num_exits >= 2:
        pol.check_thresholds(design.policy.kind, design.policy.tables, design.policy.thresholds)
    return design


# bits of the sim wrapper's dbg_stage_<k> probe, bit 0 first (docs/rtl.md "Sim probes")
STAGE_FLAGS = ("stall", "starved", "active", "buffer_full", "result_blocked")
BEAT_COUNTER_BITS = 32


def sim_probes(b: TopBuilder) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """What the sim wrapper observes inside the top: (stage flag assigns, buffer beat counters, probe list).

    The wrapper reaches the top's internal streams by hierarchical reference
    (`dut.<stream>_tvalid`), so the synthesizable top gains no port or logic."""

    def fire(s: str) -> str:
        return f"dut.{s}_tvalid && dut.{s}_tready"

    def waits(s: str) -> str:  # a beat offered, not taken
        return f"dut.{s}_tvalid && !dut.{s}_tready"

    flags, counters, probes = [], [], []
    for io in b.stage_io:
        k, src = io["stage"], io["input"]
        bits = {"stall": waits(src), "starved": f"!dut.{src}_tvalid && dut.{src}_tready", "active": fire(src),
                "buffer_full": waits(io["buffer_in"]) if "buffer_in" in io else "1'b0",
                "result_blocked": waits(io["result"])}
        flags.append({"name": f"dbg_stage_{k}", "bits": [bits[f] for f in STAGE_FLAGS]})
        probes.append({"name": f"dbg_stage_{k}", "width": len(STAGE_FLAGS), "kind": "flags", "stage": k,
                       "bits": list(STAGE_FLAGS)})
        if "buffer_in" not in io:
            continue
        occ = next(e for e in b.exits if e["index"] == k)
        probes.append({"name": occ["occupancy_port"], "width": occ["occupancy_bits"], "kind": "level", "stage": k,
                       "measure": "samples"})
        name = f"dbg_buffer_beats_{k}"
        counters.append({"name": name, "stage": k, "beats": io["beats"], "push_fire": fire(io["buffer_in"]),
                         "pop_fire": fire(io["buffer_out"]),
                         "drop_fire": f"{fire(io['decision'])} && dut.{io['decision']}_tdata[0]"})
        probes.append({"name": name, "width": BEAT_COUNTER_BITS, "kind": "level", "stage": k, "measure": "beats"})
    return flags, counters, probes


def _library_order(modules: set[str]) -> list[str]:
    from sim.rtl import rtl_sources

    return [p.stem for p in rtl_sources(*sorted(modules))]


def generate_rtl(run: str | Path) -> Path:
    """Write RUN/rtl/ (Verilog, ROM init files, manifest.json) for design.json; returns the folder."""
    from sim.rtl import rtl_dir

    run = Path(run)
    design = require_design(run)
    top = top_name(design)
    b = TopBuilder(design, top)
    b.build()
    env = _env()
    library = _library_order(b.modules - set(GLUE))
    glue = [m for m in GLUE if m in b.modules]
    texts: dict[str, str] = {f"{m}.v": (rtl_dir() / f"{m}.v").read_text() for m in library}
    texts.update({f"{m}.v": env.get_template(f"{m}.v.j2").render() for m in glue})
    net = b.net
    texts[f"{top}.v"] = env.get_template("top.v.j2").render(
        top=top, design_name=design.name, ports=net.ports, wires=net.wires, assigns=net.assigns,
        instances=net.instances)
    port = {p.name: p for p in net.ports}
    user_w = port["s_axis_tuser"].width
    data_w = port["s_axis_tdata"].width
    sim_ctx = dict(
        top=top, data_width=data_w, user_width=user_w, in_width=data_w + user_w + 1,
        out_width=port["m_axis_tdata"].width,
        thresholds=[p for p in net.ports if p.name.startswith("threshold_")],
        debug=[{"name": e["debug_port"], "width": e["debug_width"]} for e in b.exits],
        occupancy=[p for p in net.ports if p.name.startswith("dbg_occupancy_")])
    flags, counters, probes = sim_probes(b)
    texts[f"{top}_sim.v"] = env.get_template("sim_wrapper.v.j2").render(
        **sim_ctx, stage_flags=flags, beat_counters=counters)
    sources = [f"{m}.v" for m in library + glue] + [f"{top}.v"]
    manifest = {
        "top": top,
        "sim_top": f"{top}_sim",
        "sources": sources,
        "sim_sources": sources + [f"{top}_sim.v"],
        "rom_files": sorted(b.files),
        "parameters": {"DEBUG": "0 (1: logits of every exit on dbg_logits_<k>)"},
        "tag_bits": TAG_BITS,
        "num_exits": design.num_exits,
        "num_classes": design.num_classes,
        "input": {"lanes": b.in_lanes, "bits": b.in_bits, "beats_per_sample": int(np.prod(design.input.shape)) // b.in_lanes,
                  "order": "HWC", "pixels_per_beat": b.in_pixels},
        "fields": {
            "s_axis_tuser": {"force_en": [0, 1], "force_idx": [1, b.fxw]},
            "m_axis_tdata": {"class": [0, b.cls_bits], "tag": [b.cls_bits, TAG_BITS],
                             "exit": [b.cls_bits + TAG_BITS, _clog2(design.num_exits)]},
            "meta": {"tag": [0, TAG_BITS], "force_en": [TAG_BITS, 1], "force_idx": [TAG_BITS + 1, b.fxw],
                     "class": [b.idw, b.cls_bits], "count": [b.idw + b.cls_bits, b.cnt_bits]},
            "dbg_logits": "{meta, logits}: logit j (signed, logits_bits) at bit j*logits_bits",
            "sim_in_tdata": {"tdata": [0, data_w], "tuser": [data_w, user_w], "tlast": [data_w + user_w, 1]},
        },
        "ports": [dataclasses.asdict(p) for p in net.ports],
        "layers": b.layers,
        "exits": b.exits,
        "streams": net.streams,
        "sim_probes": probes,
    }
    texts[MANIFEST] = json.dumps(manifest, indent=1) + "\n"
    texts.update(b.files)
    out = run / RTL_DIR
    out.mkdir(parents=True, exist_ok=True)
    keep = {VERIFY}
    for old in out.iterdir():  # a stale file from an earlier design must not linger
        if old.is_file() and old.name not in texts and old.name not in keep:
            old.unlink()
    for name, text in sorted(texts.items()):
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return out


def load_manifest(run: str | Path) -> dict[str, Any]:
    from codesign.store.artifacts import read_artifact

    return read_artifact(run, f"{RTL_DIR}/{MANIFEST}")
