"""`codesign evaluate`: the calibrated early-exit network on the test split, in integer arithmetic."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from codesign.frontend import calibration
from stage_ir import policies
from codesign.frontend.calibrate_run import exit_costs, load_policy, policy_tables, run_dataset, run_design_ir, split_logits
from stage_ir.errors import UserError
from stage_ir import DESIGN_FILE, Design, Policy
from codesign.design.ir import load_design

EVAL_FILE = "eval.json"
PLOT_FILE = "eval.png"


def overthinking(classes: np.ndarray, labels: np.ndarray) -> list[dict[str, float]]:
    """Per early exit k: correct at k but wrong at the final exit (overthinking), and the reverse."""
    right = classes == labels[None, :]
    return [{"correct_here_wrong_final": float((right[k] & ~right[-1]).mean()),
             "wrong_here_correct_final": float((~right[k] & right[-1]).mean())} for k in range(len(right) - 1)]


def curves(logits, labels, costs: list[int], macs_no_exit: int, num_exits: int, design) -> dict[str, list[dict]]:
    """Accuracy vs MAC fraction over a threshold sweep, for every policy."""
    out = {}
    for kind in policies.POLICIES:
        if not policies.get(kind).usable(num_exits):
            continue
        tables = policy_tables(design, kind)
        points = calibration.sweep(kind, logits, labels, tables, costs=costs)
        out[kind] = [{"float_threshold": p["float_threshold"], "overall_accuracy": p["overall_accuracy"],
                      "mac_fraction": p["mean_cost"] / macs_no_exit, "exit_fractions": p["exit_fractions"]}
                     for p in points]
    return out


def plot(curve_data: dict[str, list[dict]], chosen: dict[str, Any], final_accuracy: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for kind, points in curve_data.items():
        pts = sorted(points, key=lambda p: p["mac_fraction"])
        ax.plot([p["mac_fraction"] for p in pts], [100 * p["overall_accuracy"] for p in pts], marker=".", label=kind)
    ax.scatter([chosen["mac_fraction"]], [100 * chosen["overall_accuracy"]], s=90, marker="*", color="black", zorder=5,
               label=f"calibrated ({chosen['kind']})")
    ax.axhline(100 * final_accuracy, color="grey", ls="--", lw=0.8, label="final exit only")
    ax.set_xlabel("mean MACs per sample / no-exit MACs")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs compute over a threshold sweep (integer view)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})  # no version stamp: byte-identical reruns
    plt.close(fig)


def built_design(run: Path) -> tuple[Design, Policy | None, str]:
    """The design to evaluate and its policy: design.json (after dse: the DSE's design, kept exits
    only) when it exists, else the whole network with policy.json's thresholds."""
    if (Path(run) / DESIGN_FILE).is_file():
        design = load_design(run)
        if design.num_exits > 1 and design.policy is None:
            raise UserError(f"{Path(run) / DESIGN_FILE} has no exit policy; run `codesign calibrate {run}` first")
        return design, design.policy, "design.json"
    pol = load_policy(run)
    policy = Policy.model_validate({k: pol[k] for k in ("kind", "thresholds", "tables", "float_thresholds")})
    return run_design_ir(run), policy, "policy.json (not exported yet)"


def _final_only(logits: list[np.ndarray], labels: np.ndarray, cost: int) -> dict[str, Any]:
    """calibration.evaluate's summary for a design without early exits: every sample leaves at the end."""
    right = np.argmax(logits[0], axis=1) == labels
    acc = float(right.mean())
    return {"overall_accuracy": acc, "final_accuracy": acc, "mean_cost": float(cost),
            "exits": [{"exit_fraction": 1.0, "accuracy_alone": acc, "accuracy": acc}]}


def evaluate_run(run: Path) -> dict[str, Any]:
    """Evaluate the design that is built (design.json) on the test split; write eval.json and eval.png.

    The accuracy-vs-compute curves are the whole network's (RUN/export/design.json), the
    starred point and every figure of eval.json are the built design's."""
    run = Path(run)
    load_policy(run)  # calibrated first, as before
    design, policy, source = built_design(run)
    whole = run_design_ir(run)
    ds = run_dataset(run)
    logits, labels = split_logits(design, ds, "test")
    costs = exit_costs(design)
    if policy is None:
        kind, thresholds, floats = load_policy(run)["kind"], [], []
        summary = _final_only(logits, labels, costs[0])
        classes = np.argmax(logits[0], axis=1)[None, :]
        exit_index = np.zeros(len(labels), dtype=np.int64)
        agree = {"exits": [], "exit_index": 1.0}
    else:
        kind, thresholds, floats = policy.kind, list(policy.thresholds), list(policy.float_thresholds)
        tables = policy_tables(design, kind)
        if tables["exits"] != policy.tables["exits"]:
            raise UserError(f"the {source} policy was calibrated for another model; rerun `codesign calibrate {run}`")
        view = policies.integer_view(kind, logits, tables, thresholds)
        summary = calibration.evaluate(kind, logits, labels, tables, thresholds, costs)
        classes, exit_index = view.scores.classes, view.exit_index
        agree = policies.agreement(kind, logits, tables, floats)
    exits = []
    for k, e in enumerate(summary["exits"]):
        exits.append({"index": k, "exit_fraction": e["exit_fraction"], "accuracy_alone": e["accuracy_alone"],
                      "accuracy_of_exited": e["accuracy"], "macs_to_exit": costs[k],
                      "threshold": thresholds[k] if k < len(thresholds) else None,
                      "float_threshold": floats[k] if k < len(thresholds) else None,
                      "export_exit": design.exits_kept[k]})
    whole_logits = logits if whole.num_exits == design.num_exits else split_logits(whole, ds, "test")[0]
    curve_data = curves(whole_logits, labels, exit_costs(whole), whole.macs_no_exit, whole.num_exits, whole)
    result = {
        "policy": kind,
        "design": source,
        "export_stages": [st.export_stages for st in design.stages],
        "exits_dropped": design.exits_dropped,
        "samples": int(len(labels)),
        "overall_accuracy": summary["overall_accuracy"],
        "final_accuracy": summary["final_accuracy"],
        "mac_fraction": summary["mean_cost"] / design.macs_no_exit,
        "mean_macs": summary["mean_cost"],
        "macs_no_exit": design.macs_no_exit,
        "exits": exits,
        "overthinking": overthinking(classes, labels),
        "float_integer_agreement": {"decisions": agree["exits"], "exit_index": agree["exit_index"]},
        "exit_sequence_digest": _digest(exit_index),
        "curves": curve_data,
    }
    (run / EVAL_FILE).write_text(json.dumps(result, indent=2) + "\n")
    plot(curve_data, {"kind": kind, "mac_fraction": result["mac_fraction"],
                      "overall_accuracy": result["overall_accuracy"]}, result["final_accuracy"], run / PLOT_FILE)
    return result


def _digest(exit_index: np.ndarray) -> str:
    """A short fingerprint of the per-sample exit sequence (HLS/RTL runs compare against it)."""
    import hashlib

    return hashlib.sha256(np.asarray(exit_index, dtype=np.int64).tobytes()).hexdigest()[:16]
