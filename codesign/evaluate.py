"""`codesign evaluate`: the calibrated early-exit network on the test split, in integer arithmetic."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from codesign import calibration, policies
from codesign.calibrate_run import exit_costs, load_policy, policy_tables, run_dataset, run_design_ir, split_logits
from codesign.errors import UserError

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
        if kind == "patience" and num_exits < 2:
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


def evaluate_run(run: Path) -> dict[str, Any]:
    run = Path(run)
    pol = load_policy(run)
    kind, thresholds = pol["kind"], pol["thresholds"]
    design = run_design_ir(run)
    ds = run_dataset(run)
    logits, labels = split_logits(design, ds, "test")
    tables = policy_tables(design, kind)
    if tables["exits"] != pol["tables"]["exits"]:
        raise UserError(f"{run}/policy.json was calibrated for another model; rerun `codesign calibrate {run}`")
    costs = exit_costs(design)
    view = policies.integer_view(kind, logits, tables, thresholds)
    summary = calibration.evaluate(kind, logits, labels, tables, thresholds, costs)
    agree = policies.agreement(kind, logits, tables, pol["float_thresholds"])
    exits = []
    for k, e in enumerate(summary["exits"]):
        exits.append({"index": k, "exit_fraction": e["exit_fraction"], "accuracy_alone": e["accuracy_alone"],
                      "accuracy_of_exited": e["accuracy"], "macs_to_exit": costs[k],
                      "threshold": thresholds[k] if k < len(thresholds) else None,
                      "float_threshold": pol["float_thresholds"][k] if k < len(thresholds) else None})
    curve_data = curves(logits, labels, costs, design.macs_no_exit, design.num_exits, design)
    result = {
        "policy": kind,
        "samples": int(len(labels)),
        "overall_accuracy": summary["overall_accuracy"],
        "final_accuracy": summary["final_accuracy"],
        "mac_fraction": summary["mean_cost"] / design.macs_no_exit,
        "mean_macs": summary["mean_cost"],
        "macs_no_exit": design.macs_no_exit,
        "exits": exits,
        "overthinking": overthinking(view.scores.classes, labels),
        "float_integer_agreement": {"decisions": agree["exits"], "exit_index": agree["exit_index"]},
        "exit_sequence_digest": _digest(view.exit_index),
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
