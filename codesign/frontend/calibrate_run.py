"""`codesign calibrate`: per-exit integer thresholds for a run, on its validation split.

Calibration works on the integer logits of the stage IR as exported (every exit, the
numpy reference), so the hardware's decisions equal the calibrated ones by construction.
Before `codesign export` the IR is built in memory from the trained model.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from codesign.frontend import calibration
from stage_ir import policies
from codesign.design.compose import POLICY_FILE, policy_tables, write_design
from codesign.store.artifacts import read_artifact
from codesign.frontend.data import Dataset, load_dataset
from stage_ir.errors import UserError
from stage_ir import EXPORTED_FILE, Design
from codesign.design.ir import load_exported_design
from codesign.design.reference import run_design

__all__ = ["POLICY_FILE", "policy_tables", "run_design_ir", "calibrate_run", "load_policy"]


def run_design_ir(run: Path) -> Design:
    """The whole network's IR: RUN/export/design.json if exported, else built in memory from model.pt.

    Never RUN/design.json, which the DSE may have reduced to fewer exits."""
    run = Path(run)
    if (run / EXPORTED_FILE).is_file():
        return load_exported_design(run)
    from codesign.frontend.export import build_design
    from codesign.frontend.run import load_trained

    cfg, model, ds = load_trained(run)
    with tempfile.TemporaryDirectory() as tmp:
        return build_design(cfg, model, ds, Path(tmp))


def run_dataset(run: Path) -> Dataset:
    from codesign.frontend.config import load_config

    cfg = load_config(Path(run) / "config.yaml")
    return load_dataset(cfg.data, cfg.seed)


def split_logits(design: Design, ds: Dataset, split: str) -> tuple[list[np.ndarray], np.ndarray]:
    part = ds.split(split)
    return run_design(design, part.x), part.y


def exit_costs(design: Design) -> list[int]:
    """MACs a sample has spent when it leaves at exit k (the heads of earlier exits included)."""
    costs, total = [], 0
    for stage in design.stages:
        total += stage.macs["backbone"] + stage.macs["head"]
        costs.append(total)
    return costs


def _manual(kind: str, design: Design, logits, labels, tables, thresholds: Sequence[int], costs) -> dict:
    thr = policies.check_thresholds(kind, tables, list(thresholds))
    return {
        "kind": kind, "thresholds": [int(t) for t in thr], "tables": tables,
        "float_thresholds": [policies.int_to_float_threshold(kind, t, tables, k) for k, t in enumerate(thr)],
        "target": {"mode": "manual"},
        "validation": calibration.evaluate(kind, logits, labels, tables, thr, costs),
    }


def calibrate_run(run: Path, policy: str = policies.DEFAULT, accuracy_delta: float | None = None,
                  exit_rates: Sequence[float] | None = None, budget: float | None = None,
                  thresholds: Sequence[int] | None = None) -> dict[str, Any]:
    """Calibrate, write RUN/policy.json and, when exported, design.json = exported IR + this policy
    (an earlier DSE choice no longer applies: rerun `codesign dse`).

    Exactly one of accuracy_delta (pp below the final exit), exit_rates (fraction
    of all samples per early exit), budget (mean MACs per sample) or explicit
    integer thresholds; with none, the config's policy.accuracy_delta.
    """
    run = Path(run)
    policies.check_policy(policy)
    design = run_design_ir(run)
    if design.num_exits < 2:
        raise UserError("the model has no early exit; add one under model.exits and train again")
    ds = run_dataset(run)
    logits, labels = split_logits(design, ds, "val")
    tables = policy_tables(design, policy)
    costs = exit_costs(design)
    if thresholds is not None:
        result = _manual(policy, design, logits, labels, tables, thresholds, costs)
    else:
        if accuracy_delta is None and exit_rates is None and budget is None:
            from codesign.frontend.config import load_config

            accuracy_delta = load_config(run / "config.yaml").policy.accuracy_delta
        result = calibration.calibrate(policy, logits, labels, tables, accuracy_delta=accuracy_delta,
                                       exit_fractions=exit_rates, budget=budget, costs=costs)
    result["costs_macs"] = costs
    result["macs_no_exit"] = design.macs_no_exit
    result["validation"]["mac_fraction"] = result["validation"]["mean_cost"] / design.macs_no_exit
    (run / POLICY_FILE).write_text(json.dumps(result, indent=2) + "\n")
    if (run / EXPORTED_FILE).is_file():
        write_design(run)
    return result


def load_policy(run: Path) -> dict[str, Any]:
    """RUN/policy.json, its thresholds within their ranges."""
    pol = read_artifact(run, POLICY_FILE)
    policies.check_stored(pol["kind"], pol["tables"], pol["thresholds"], str(Path(run) / POLICY_FILE),
                          f"rerun `codesign calibrate {run}`")
    return pol
