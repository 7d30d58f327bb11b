"""`codesign report`: RUN/report.html (self-contained, plots embedded) and RUN/report.md.

Every section is filled from the JSON artifacts the steps wrote; a section whose
step has not run says which command produces it.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from codesign.ir import load_design

PLOTS = {  # figure -> (file in RUN, command that makes it)
    "curves": ("eval.png", "codesign evaluate {run}"),
    "pareto": ("dse.png", "codesign dse {run}"),
    "throughput_vs_exit_rate": ("estimate.png", "codesign estimate {run}"),
    "sim_sweep": ("sim/sweep.png", "codesign sim {run} --sweep iid:0.1..0.9"),
}


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


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


def collect(run: Path) -> dict[str, Any]:
    """Everything the report shows, as plain data (also handy for scripts)."""
    run = Path(run)
    design = load_design(run)
    data = {
        "run": str(run), "name": design.name, "device": design.device, "clock_ns": design.clock_ns,
        "num_exits": design.num_exits, "policy": design.policy.model_dump() if design.policy else None,
        "layers": _layer_rows(design), "macs_no_exit": design.macs_no_exit,
        "train": _json(run / "train.json"), "eval": _json(run / "eval.json"), "dse": _json(run / "dse.json"),
        "estimate": _json(run / "estimate.json"), "export_verify": _json(run / "export" / "verify.json"),
        "csim": _json(run / "hls" / "csim.json"), "rtl_verify": _json(run / "rtl" / "verify.json"),
        "sim": _json(run / "sim" / "data.json"), "sweep": _json(run / "sim" / "sweep.json"),
        "synth": _json(run / "synth.json"),
    }
    data["plots"] = {key: {"file": name, "present": (run / name).is_file(), "command": cmd.format(run=run)}
                     for key, (name, cmd) in PLOTS.items()}
    if data["sweep"]:  # the exact sweep that made the plot
        data["plots"]["sim_sweep"]["command"] = f"codesign sim {run} --sweep '{data['sweep']['sweep']}'"
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
