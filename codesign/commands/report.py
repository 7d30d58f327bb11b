"""`codesign report`: RUN/report.html (self-contained, plots embedded) and RUN/report.md.

Every section is filled from the JSON artifacts the steps wrote; a section whose
step has not run says which command produces it.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from codesign.store.artifacts import read_artifact
from codesign.design.ir import load_design

PLOTS = {  # figure -> (file in RUN, command that makes it)
    "curves": ("eval.png", "codesign evaluate {run}"),
    "pareto": ("dse.png", "codesign dse {run}"),
    "throughput_vs_exit_rate": ("estimate.png", "codesign estimate {run}"),
    "sim_sweep": ("sim/sweep.png", "codesign sim {run} --sweep iid:0.1..0.9"),
}


SECTIONS = {  # report data key -> artifact
    "train": "train.json", "eval": "eval.json", "dse": "dse.json", "estimate": "estimate.json",
    "export_verify": "export/verify.json", "csim": "hls/csim.json", "rtl_verify": "rtl/verify.json",
    "sim": "sim/data.json", "sweep": "sim/sweep.json", "synth": "synth.json",
}


def stale_artifacts(run: Path) -> dict[str, str]:
    """Artifacts a step made before its inputs changed: {file: "why (command to rerun)"}. The report
    leaves them out rather than show an earlier result; a stale design.json means no report at all."""
    from stage_ir.errors import UserError
    from codesign.store.runfolder import stale_inputs
    from codesign.commands.steps import BY_NAME, REPORT_READS

    found = {rel: f"{change} since `codesign {maker.name}` made it" for rel, maker, change
             in stale_inputs(run, list(REPORT_READS), BY_NAME)}
    if "design.json" in found:
        raise UserError(f"{run / 'design.json'} is stale: {found['design.json']}; rerun that step "
                        f"(or `codesign flow`) first")
    return found


def _layer_rows(design) -> list[dict[str, Any]]:
    rows = []
    for stage in design.stages:
        for part, layers in (("backbone", stage.layers), ("head", stage.head)):
            for layer in layers:
                fold = getattr(layer, "folding", None)
                rows.append({"stage": stage.index, "part": part, "name": layer.name, "kind": layer.kind,
                             "input": "x".join(map(str, layer.input.shape)), "output": "x".join(map(str, layer.output.shape)),
                             "bits": f"w{layer.w_bits}/" + (f"a{layer.act.bits}" if layer.act else f"acc{layer.output.bits}")
                             if hasattr(layer, "w_bits") else f"a{layer.output.bits}",
                             "macs": layer.macs, "folding": f"PE {fold.pe} / SIMD {fold.simd}" if fold else "-"})
    return rows


def built_design(run: Path, design, dse: dict | None, ev: dict | None) -> dict[str, Any]:
    """Which exits design.json builds, whether it is the DSE's choice and whether eval.json evaluated it."""
    from codesign.commands.estimate_run import eval_describes
    from stage_ir import EXPORTED_FILE
    from codesign.design.ir import load_exported_design

    exported = load_exported_design(run).num_exits if (run / EXPORTED_FILE).is_file() else design.num_exits
    thresholds = [int(t) for t in design.policy.thresholds] if design.policy else []
    chosen = (dse or {}).get("chosen") or {}
    return {
        "exits_kept": design.exits_kept, "exits_dropped": design.exits_dropped, "exported_exits": exported,
        "export_stages": [st.export_stages for st in design.stages],
        "is_dse_choice": None if dse is None else (chosen.get("exits_kept") == design.exits_kept
                                                   and chosen.get("thresholds") == thresholds),
        "eval_describes_it": None if ev is None else eval_describes(ev, design),
    }


def collect(run: Path) -> dict[str, Any]:
    """Everything the report shows, as plain data (also handy for scripts)."""
    run = Path(run)
    design = load_design(run)
    stale = stale_artifacts(run)

    data = {
        # commands name no folder ("RUN"): a moved run's report is the same bytes
        "run": "RUN", "name": design.name, "device": design.device, "clock_ns": design.clock_ns,
        "num_exits": design.num_exits, "policy": design.policy.model_dump() if design.policy else None,
        "layers": _layer_rows(design), "macs_no_exit": design.macs_no_exit,
        # a stale artifact is left out, as if its step had not run
        **{key: None if name in stale else read_artifact(run, name, missing_ok=True)
           for key, name in SECTIONS.items()},
    }
    data["built"] = built_design(run, design, data["dse"], data["eval"])
    data["stale"] = [{"file": rel, "why": why} for rel, why in sorted(stale.items())]
    data["plots"] = {key: {"file": name, "present": (run / name).is_file() and name not in stale,
                           "command": cmd.format(run="RUN")}
                     for key, (name, cmd) in PLOTS.items()}
    if data["sweep"]:  # the exact sweep that made the plot
        data["plots"]["sim_sweep"]["command"] = f"codesign sim RUN --sweep '{data['sweep']['sweep']}'"
    return data


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("codesign.templates", "report"), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["pct"] = lambda x: "-" if x is None else f"{100 * x:.2f} %"
    env.filters["num"] = lambda x, d=4: "-" if x is None else (f"{x:.{d}g}" if isinstance(x, float) else str(x))
    return env


def to_html(md: str, run: Path, title: str) -> str:
    """report.md as one self-contained page: the PNGs it links become data URIs."""
    import markdown

    body = markdown.markdown(md, extensions=["tables"])
    for name, _ in PLOTS.values():
        if (run / name).is_file():
            uri = "data:image/png;base64," + base64.b64encode((run / name).read_bytes()).decode()
            body = body.replace(f'src="{name}"', f'src="{uri}"')
    return _environment().get_template("page.html.j2").render(title=title, body=body)


def write_report(run: Path) -> list[Path]:
    run = Path(run)
    data = collect(run)
    md = _environment().get_template("report.md.j2").render(d=data)
    html = to_html(md, run, f"codesign report: {data['name']}")
    out_html, out_md = run / "report.html", run / "report.md"
    out_html.write_text(html)
    out_md.write_text(md)
    return [out_html, out_md]
