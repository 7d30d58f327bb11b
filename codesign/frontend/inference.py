"""Inference modes on the integer view: subnet, anytime, budgeted adaptive."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from codesign.frontend import calibration
from stage_ir import policies
from codesign.frontend.calibrate_run import exit_costs, policy_tables, run_dataset, run_design_ir, split_logits
from stage_ir.errors import UserError


def subnet(run: Path, exit_index: int, split: str = "test") -> dict[str, Any]:
    """The network truncated at exit k: its accuracy and its MACs (no other head computed)."""
    design = run_design_ir(run)
    if not 0 <= exit_index < design.num_exits:
        raise UserError(f"exit {exit_index} does not exist; this design has exits 0..{design.num_exits - 1}")
    logits, labels = split_logits(design, run_dataset(run), split)
    macs = sum(s.macs["backbone"] for s in design.stages[: exit_index + 1]) + design.stages[exit_index].macs["head"]
    acc = float((logits[exit_index].argmax(1) == labels).mean())
    return {"mode": "subnet", "split": split, "exit": exit_index, "accuracy": acc, "macs": int(macs),
            "mac_fraction": macs / design.macs_no_exit}


def anytime(run: Path, split: str = "test") -> dict[str, Any]:
    """Every exit's prediction for every sample: accuracy as the answer is refined exit by exit."""
    design = run_design_ir(run)
    logits, labels = split_logits(design, run_dataset(run), split)
    classes = np.stack([np.argmax(z, axis=1) for z in logits])  # lowest index on ties, as the hardware
    costs = exit_costs(design)
    exits = [{"index": k, "accuracy": float((classes[k] == labels).mean()), "macs": costs[k],
              "changed_from_previous": float((classes[k] != classes[k - 1]).mean()) if k else 0.0}
             for k in range(design.num_exits)]
    return {"mode": "anytime", "split": split, "samples": int(len(labels)), "exits": exits,
            "predictions": classes.T.tolist()}


def budgeted(run: Path, budget_macs: float, policy: str = policies.DEFAULT, split: str = "test") -> dict[str, Any]:
    """Thresholds that maximise validation accuracy within a mean-MAC budget, applied to `split`."""
    design = run_design_ir(run)
    ds = run_dataset(run)
    tables = policy_tables(design, policy)
    costs = exit_costs(design)
    val_logits, val_labels = split_logits(design, ds, "val")
    thr = calibration.calibrate_budget(policy, val_logits, val_labels, tables, budget_macs, costs)
    logits, labels = split_logits(design, ds, split)
    ev = calibration.evaluate(policy, logits, labels, tables, thr, costs)
    return {"mode": "budget", "split": split, "policy": policy, "budget_macs": budget_macs, "thresholds": thr,
            "overall_accuracy": ev["overall_accuracy"], "mean_macs": ev["mean_cost"],
            "mac_fraction": ev["mean_cost"] / design.macs_no_exit,
            "exit_fractions": [e["exit_fraction"] for e in ev["exits"]],
            "float_thresholds": [policies.int_to_float_threshold(policy, t, tables, k) for k, t in enumerate(thr)]}
