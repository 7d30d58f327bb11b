"""`codesign estimate` and `codesign dse`: the analytical model (hw_models) applied to a run."""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from codesign.frontend import calibration
from stage_ir import policies
from codesign.store.artifacts import read_artifact
from codesign.frontend.calibrate_run import load_policy, run_dataset, run_design_ir, split_logits
from codesign.design.compose import POLICY_FILE, calibrated_policy, compose_design, write_design
from stage_ir.errors import UserError
from stage_ir import Design
from codesign.design.ir import load_design
from codesign.store.timings import write_json

ESTIMATE_FILE, DSE_FILE = "estimate.json", "dse.json"


def eval_describes(ev: dict[str, Any], design: Design) -> bool:
    """True when eval.json evaluated this design (same exits, same thresholds)."""
    thresholds = [int(t) for t in design.policy.thresholds] if design.policy else []
    return (ev.get("export_stages") == [st.export_stages for st in design.stages]
            and [e.get("threshold") for e in ev["exits"][:-1]] == thresholds)


def calibrated_exit_fractions(run: Path, design: Design) -> tuple[list[float], str]:
    """Exit fractions of `design` measured on the test split (eval.json, if it evaluated this design),
    else on the validation split (policy.json for the whole network, else design.json's own policy)."""
    ev = read_artifact(run, "eval.json", missing_ok=True)
    if ev is not None and eval_describes(ev, design):
        return [e["exit_fraction"] for e in ev["exits"]], "test split (eval.json)"
    if design.num_exits == 1:
        return [1.0], "one exit (no early exit)"
    pol = load_policy(run)
    if design.exits_dropped or [int(t) for t in pol["thresholds"]] != list(design.policy.thresholds):
        logits, labels = split_logits(design, run_dataset(run), "val")
        view = policies.integer_view(design.policy.kind, logits, design.policy.tables, design.policy.thresholds)
        counts = np.bincount(view.exit_index, minlength=design.num_exits)
        return (counts / len(labels)).tolist(), "validation split (design.json's policy)"
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
    fractions, source = calibrated_exit_fractions(run, design)
    result = estimate(design, devices, fractions, backend=backend, burst_length=burst_length)
    result["exit_fractions_source"] = source
    (run / ESTIMATE_FILE).write_text(json.dumps(result, indent=2) + "\n")
    (run / "estimate.md").write_text(render_markdown(result))
    plot_throughput_vs_exit_rate(design, fractions, run / "estimate.png", backend=backend)
    return result


def exit_points(run: Path, design: Design, kind: str, final_accuracy: float | None = None) -> list[dict[str, Any]]:
    """The calibration curves the DSE walks along, on the validation split: for every subset of early
    exits kept (the final exit always), one shared float threshold per point, evaluated on exactly
    those exits (`"exits"`), so each point's accuracy and exit fractions are its reduced design's.
    `design`: the whole network (the exported IR); the no-early-exit point has `final_accuracy`."""
    logits, labels = split_logits(design, run_dataset(run), "val")
    n, last = design.num_exits, design.num_exits - 1
    final = float(np.mean(np.argmax(logits[last], axis=1) == labels)) if final_accuracy is None else final_accuracy
    points = [{"threshold": None, "thresholds_int": [], "exit_fractions": [1.0], "accuracy": final,
               "samples": int(len(labels)), "exits": [last]}]
    for r in range(1, n):
        for kept in itertools.combinations(range(n - 1), r):
            exits = [*kept, last]
            tables = policies.make_tables(kind, [design.stages[k].logits.frac for k in exits], design.num_classes,
                                          [design.stages[k].logits.bits for k in exits])
            points += [{"threshold": p["float_threshold"], "thresholds_int": p["thresholds"],
                        "exit_fractions": p["exit_fractions"], "accuracy": p["overall_accuracy"],
                        "samples": int(len(labels)), "exits": exits}
                       for p in calibration.sweep(kind, [logits[k] for k in exits], labels, tables)]
    return points


def dse_run(run: Path, device: str, budget: float = 0.7, objective: str = "throughput",
            min_accuracy: float | None = None, throughput_target: float | None = None, burst_length: float = 1.0,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Explore folding, exits, thresholds and buffer depths on the whole network (the exported IR);
    write dse.json, dse.png and the chosen design into design.json.

    design.json becomes the chosen design itself: the exits the DSE drops are not in it (their
    stages merge into the next kept one), the policy has the kept exits' thresholds only."""
    from hw_models import plot_pareto, run_dse

    run = Path(run)
    exported = run_design_ir(run)
    policy = calibrated_policy(run)
    if policy is None:
        raise UserError(f"{run / POLICY_FILE} not found; run `codesign calibrate {run}` first")
    pol = load_policy(run)
    if min_accuracy is None:  # default floor: what the user calibrated for
        min_accuracy = pol["validation"]["overall_accuracy"]
    whole = compose_design(exported, policy)
    points = exit_points(run, exported, policy.kind, pol["validation"]["final_accuracy"])
    result = run_dse(whole, device, budget=budget, objective=objective, min_accuracy=min_accuracy,
                     exit_points=points, throughput_target=throughput_target, burst_length=burst_length,
                     final_accuracy=pol["validation"]["final_accuracy"], progress=progress)
    chosen = result["chosen"]
    match = [p for p in points if p["exits"] == chosen["exits_kept"] and p["threshold"] == chosen.get("threshold")]
    chosen["thresholds"] = [int(t) for t in match[0]["thresholds_int"]] if match else []
    chosen["exits_dropped"] = [k for k in range(exported.num_exits - 1) if k not in chosen["exits_kept"]]
    result["min_accuracy"] = min_accuracy
    new = write_design(run, chosen, device=result["device"])
    result["design"] = {"stages": new.num_exits, "export_stages": [st.export_stages for st in new.stages]}
    plot_pareto(result, run / "dse.png")
    write_json(run / DSE_FILE, result)
    return result
