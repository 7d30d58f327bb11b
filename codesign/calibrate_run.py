"""`codesign calibrate`: per-exit integer thresholds for a run, on its validation split.

Calibration works on the integer logits of the stage IR (the numpy reference),
so the hardware's decisions equal the calibrated ones by construction. Before
`codesign export` the IR is built in memory from the trained model.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from codesign import calibration, policies
from codesign.data import Dataset, load_dataset
from codesign.errors import UserError
from codesign.ir import DESIGN_FILE, Design, Policy, load_design, save_design
from codesign.reference import run_design

POLICY_FILE = "policy.json"


def run_design_ir(run: Path) -> Design:
    """design.json if exported, else the same IR built in memory from model.pt."""
    run = Path(run)
    if (run / DESIGN_FILE).is_file():
        return load_design(run)
    from codesign.export import build_design
    from codesign.run import load_trained

    cfg, model, ds = load_trained(run)
    with tempfile.TemporaryDirectory() as tmp:
        return build_design(cfg, model, ds, Path(tmp))


def run_dataset(run: Path) -> Dataset:
    from codesign.config import load_config

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


def policy_tables(design: Design, kind: str) -> dict[str, Any]:
    return policies.make_tables(kind, [s.logits.frac for s in design.stages], design.num_classes,
                                [s.logits.bits for s in design.stages])


def _manual(kind: str, design: Design, logits, labels, tables, thresholds: Sequence[int], costs) -> dict:
    thr = policies.check_thresholds(kind, tables, list(thresholds))
    return {
        "kind": kind, "thresholds": [int(t) for t in thr], "tables": tables,
        "float_thresholds": [policies.int_to_float_threshold(kind, t, tables, k) for k, t in enumerate(thr)],
        "target": {"mode": "manual"},
        "validation": calibration.evaluate(kind, logits, labels, tables, thr, costs),
    }


def calibrate_run(run: Path, policy: str = "max_softmax", accuracy_delta: float | None = None,
                  exit_rates: Sequence[float] | None = None, budget: float | None = None,
                  thresholds: Sequence[int] | None = None) -> dict[str, Any]:
    """Calibrate, write RUN/policy.json and update design.json's policy when exported.

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
            from codesign.config import load_config

            accuracy_delta = load_config(run / "config.yaml").policy.accuracy_delta
        result = calibration.calibrate(policy, logits, labels, tables, accuracy_delta=accuracy_delta,
                                       exit_fractions=exit_rates, budget=budget, costs=costs)
    result["costs_macs"] = costs
    result["macs_no_exit"] = design.macs_no_exit
    result["validation"]["mac_fraction"] = result["validation"]["mean_cost"] / design.macs_no_exit
    (run / POLICY_FILE).write_text(json.dumps(result, indent=2) + "\n")
    if (run / DESIGN_FILE).is_file():
        design.policy = Policy.model_validate({k: result[k] for k in ("kind", "thresholds", "tables", "float_thresholds")})
        save_design(design, run)
    return result


def load_policy(run: Path) -> dict[str, Any]:
    path = Path(run) / POLICY_FILE
    if not path.is_file():
        raise UserError(f"{path} not found; run `codesign calibrate {run}` first")
    return json.loads(path.read_text())
