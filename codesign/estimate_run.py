"""`codesign estimate` and `codesign dse`: the analytical model (hw_models) applied to a run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from codesign import calibration, policies
from codesign.calibrate_run import load_policy, policy_tables, run_dataset, split_logits
from codesign.errors import UserError
from codesign.ir import Design, Policy, load_design, save_design

ESTIMATE_FILE, DSE_FILE = "estimate.json", "dse.json"


def calibrated_exit_fractions(run: Path) -> tuple[list[float], str]:
    """Exit fractions measured on the test split (eval.json), else on validation (policy.json)."""
    ev = Path(run) / "eval.json"
    if ev.is_file():
        return [e["exit_fraction"] for e in json.loads(ev.read_text())["exits"]], "test split (eval.json)"
    pol = load_policy(run)
    return [e["exit_fraction"] for e in pol["validation"]["exits"]], "validation split (policy.json)"


def parse_devices(text: str) -> list[str]:
    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices:
        raise UserError("--device needs at least one part name, e.g. xc7z020 or xc7z020,xczu3eg")
    return devices


def estimate_run(run: Path, devices: list[str], backend: str = "rtl", burst_length: float = 1.0) -> dict[str, Any]:
    """Write RUN/estimate.json, estimate.md and estimate.png (throughput vs exit rate)."""
    from hw_models import estimate, plot_throughput_vs_exit_rate, render_markdown

    run = Path(run)
    design = load_design(run)
    fractions, source = calibrated_exit_fractions(run)
    result = estimate(design.as_dict(), devices, fractions, backend=backend, burst_length=burst_length)
    result["exit_fractions_source"] = source
    (run / ESTIMATE_FILE).write_text(json.dumps(result, indent=2) + "\n")
    (run / "estimate.md").write_text(render_markdown(result))
    plot_throughput_vs_exit_rate(design.as_dict(), fractions, run / "estimate.png", backend=backend)
    return result


def exit_points(run: Path, design: Design, kind: str) -> list[dict[str, Any]]:
    """The calibration curve the DSE walks along: one shared float threshold per point (validation split)."""
    logits, labels = split_logits(design, run_dataset(run), "val")
    tables = policy_tables(design, kind)
    return [{"threshold": p["float_threshold"], "thresholds_int": p["thresholds"], "exit_fractions": p["exit_fractions"],
             "accuracy": p["overall_accuracy"], "samples": int(len(labels))}
            for p in calibration.sweep(kind, logits, labels, tables)]


def dse_run(run: Path, device: str, budget: float = 0.7, objective: str = "throughput",
            min_accuracy: float | None = None, throughput_target: float | None = None, burst_length: float = 1.0,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Explore folding, exits, thresholds and buffer depths; write dse.json, dse.png and the choice into design.json.

    An exit the DSE drops keeps its hardware but gets the policy's never-exit threshold, so the
    IR stays one design and its behaviour equals the explored point.
    """
    from hw_models import apply_folding, plot_pareto, run_dse

    run = Path(run)
    design = load_design(run)
    if design.policy is None:
        raise UserError(f"design.json has no exit policy; run `codesign calibrate {run}` first")
    kind = design.policy.kind
    pol = load_policy(run)
    if min_accuracy is None:  # default floor: what the user calibrated for
        min_accuracy = pol["validation"]["overall_accuracy"]
    points = exit_points(run, design, kind)
    result = run_dse(design.as_dict(), device, budget=budget, objective=objective, min_accuracy=min_accuracy,
                     exit_points=points, throughput_target=throughput_target, burst_length=burst_length,
                     final_accuracy=pol["validation"]["final_accuracy"], progress=progress)
    chosen = result["chosen"]
    match = [p for p in points if p["threshold"] == chosen.get("threshold")]
    thresholds = list(match[0]["thresholds_int"]) if match else list(design.policy.thresholds)
    tables = policy_tables(design, kind)
    for k in range(design.num_exits - 1):
        if k not in chosen["exits_kept"]:
            thresholds[k] = policies.never_threshold(kind, tables, k)
    chosen["thresholds"] = [int(t) for t in thresholds]
    result["min_accuracy"] = min_accuracy
    new = Design.model_validate(apply_folding(design.as_dict(), chosen))
    new._root = design.root
    new.device = result["device"]
    new.policy = Policy.model_validate({**design.policy.model_dump(), "thresholds": chosen["thresholds"],
                                        "float_thresholds": [policies.int_to_float_threshold(kind, t, tables, k)
                                                             for k, t in enumerate(chosen["thresholds"])]})
    save_design(new, run)
    plot_pareto(result, run / "dse.png")
    # written last: the flow treats dse.json newer than design.json as "dse is up to date"
    (run / DSE_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result
