"""The HLS dataflow top: threshold units (each exit's policy fills its context), the top's template context, testbench data."""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from stage_ir import policies as pol
import stage_ir
from codesign.hls.project import StageProject, TOP_DIR, c_name


def _templates():
    return resources.files("codesign.templates") / "hls"


def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(_templates())), trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def exit_unit_context(policy: str, tables: dict[str, Any], k: int, threshold: int | None) -> dict[str, Any]:
    """Template values of exit k's threshold unit (threshold None: the final classifier).

    Widths follow from the policy tables: logits are ap_int<logit_bits[k]>, sums and scores
    are just wide enough for their documented ranges (docs/policies.md).
    """
    num_exits, num_classes = tables["num_exits"], tables["num_classes"]
    ex: dict[str, Any] = {"index": k, "final": threshold is None, "bits": int(tables["logit_bits"][k]),
                          "frac": int(tables["logit_frac"][k])}
    if threshold is None:
        return ex
    tab = tables["exits"][k]
    lo, hi = pol.threshold_range(policy, tables, k)
    ex.update(default_threshold=int(threshold), never_threshold=pol.never_threshold(policy, tables, k))
    count_bits = max(1, num_exits.bit_length())
    pol.get(policy).hls_context(ex, tab, lo, hi, num_classes, count_bits)
    assert lo <= threshold <= hi
    return ex


def threshold_unit_source(policy: str, tables: dict[str, Any], thresholds: Sequence[int], namespace: str,
                          design_name: str = "design") -> str:
    """threshold_unit.h: one decide_<k>() per exit (the last is the final classifier's argmax)."""
    num_exits = tables["num_exits"]
    exits = [exit_unit_context(policy, tables, k, thresholds[k] if k < num_exits - 1 else None)
             for k in range(num_exits)]
    return _env().get_template("threshold_unit.h.j2").render(
        design_name=design_name, policy=policy, namespace=namespace, guard=f"{namespace.upper()}_THRESHOLD_UNIT_H_",
        num_classes=tables["num_classes"], num_exits=num_exits,
        class_bits=max(1, (tables["num_classes"] - 1).bit_length()), count_bits=max(1, num_exits.bit_length()),
        exits=exits)


def threshold_unit_harness(units: Sequence[tuple[str, str, dict[str, Any]]]) -> str:
    """A standalone C++ driver of threshold units: (namespace, header, tables) per unit (used by the tests)."""
    ctx = [{"namespace": ns, "header": header,
            "exits": [{"index": k, "final": k == tables["num_exits"] - 1} for k in range(tables["num_exits"])]}
           for ns, header, tables in units]
    return _env().get_template("threshold_unit_tb.cpp.j2").render(units=ctx)


def exit_policy(design: stage_ir.Design) -> tuple[str, dict[str, Any], list[int]]:
    """(kind, tables, thresholds) of the design's threshold units; a design without early exits has
    only the final classifier (an argmax, `margin` in the templates) and no tables but its logit grid."""
    if design.policy is not None:
        return design.policy.kind, design.policy.tables, list(design.policy.thresholds)
    last = design.stages[-1].logits
    return pol.ARGMAX, {"num_exits": 1, "num_classes": design.num_classes, "logit_frac": [last.frac],
                      "logit_bits": [last.bits], "exits": []}, []


def top_context(design: stage_ir.Design, stages: list[StageProject], part: str, clock_ns: float, io_type: str) -> dict:
    kind, tables, thresholds = exit_policy(design)
    top = f"{c_name(design.name)}_top"
    namespace = f"{c_name(design.name)}_ee"
    exits = [exit_unit_context(kind, tables, k, thresholds[k] if k < design.num_exits - 1 else None)
             for k in range(design.num_exits)]
    spec = design.input
    in_type = f"ap_{'fixed' if spec.signed else 'ufixed'}<{spec.bits}, {spec.bits - spec.frac}>"
    return {
        "design_name": design.name, "top": top, "namespace": namespace, "guard": f"{top.upper()}_H_",
        "policy": kind, "io": io_type, "num_exits": design.num_exits, "stages": stages,
        "early_exits": exits[:-1], "in_bits": spec.bits, "in_frac": spec.frac, "in_size": spec.size,
        "in_beat_bits": 8 * ((spec.bits + 7) // 8), "in_type": in_type,
        "results_depth": sum(s.buffer_depth for s in stages if not s.final) + 2,
        "part": part, "clock_ns": clock_ns,
    }


def write_top(design: stage_ir.Design, hls_dir: Path, stages: list[StageProject], part: str, clock_ns: float,
              io_type: str) -> dict:
    """Render the top project (firmware, testbench, Tcl, csim stand-in headers)."""
    ctx = top_context(design, stages, part, clock_ns, io_type)
    top_dir = hls_dir / TOP_DIR
    env = _env()
    files = {
        f"firmware/{ctx['top']}.h": env.get_template("top.h.j2").render(**ctx),
        f"firmware/{ctx['top']}.cpp": env.get_template("top.cpp.j2").render(**ctx),
        "firmware/threshold_unit.h": threshold_unit_source(*exit_policy(design), ctx["namespace"], design.name),
        f"tb/{ctx['top']}_test.cpp": env.get_template("tb.cpp.j2").render(**ctx),
        "build_prj.tcl": env.get_template("build_prj.tcl.j2").render(**ctx),
        "csim_include/ap_axi_sdata.h": (_templates() / "csim_include" / "ap_axi_sdata.h").read_text(),
    }
    for rel, text in files.items():
        path = top_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ctx


# --------------------------------------------------------------------------- data and reference


def test_split(run: Path) -> np.ndarray:
    """Integer test inputs [N, *input.shape] of the run's data set."""
    from codesign.frontend.calibrate_run import run_dataset

    return run_dataset(run).test.x


def write_tb_data(top_dir: Path, x: np.ndarray, design: stage_ir.Design) -> None:
    """tb_data/tb_input_features.dat (tag, flat integers) and tb_expected.dat (tag, class, exit)."""
    from codesign.design.reference import design_view

    flat = x.reshape(len(x), -1).astype(np.int64)
    lines = [" ".join(map(str, [i, *row])) for i, row in enumerate(flat.tolist())]
    tb_data = top_dir / "tb_data"
    tb_data.mkdir(parents=True, exist_ok=True)
    (tb_data / "tb_input_features.dat").write_text("\n".join(lines) + "\n")
    _, view = design_view(design, x)
    rows = zip(range(len(x)), view.exit_class.tolist(), view.exit_index.tolist())
    (tb_data / "tb_expected.dat").write_text("".join(f"{t} {c} {e}\n" for t, c, e in rows))
