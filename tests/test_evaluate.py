"""Calibration, evaluation and inference modes on a trained run (issue: exit policies)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from codesign import policies
from codesign.calibrate_run import calibrate_run, policy_tables, run_dataset, split_logits
from codesign.errors import UserError
from codesign.evaluate import evaluate_run
from codesign.inference import anytime, budgeted, subnet
from codesign.ir import load_design
from tests.conftest import calibrated_copy
from tests.test_config import run_cli


@pytest.fixture(scope="module")
def calibrated(mlp_run, tmp_path_factory):
    return calibrated_copy(mlp_run, tmp_path_factory)


def test_default_demo_acceptance(calibrated):
    """delta = 1 pp: >= 60 % leave early, overall within 1.5 pp of the final exit."""
    pol = json.loads((calibrated / "policy.json").read_text())
    v = pol["validation"]
    assert v["overall_accuracy"] >= v["final_accuracy"] - 0.01 - 1e-12  # met on validation by construction
    ev = evaluate_run(calibrated)
    assert ev["exits"][0]["exit_fraction"] >= 0.60
    assert ev["overall_accuracy"] >= ev["final_accuracy"] - 0.015
    assert abs(sum(e["exit_fraction"] for e in ev["exits"]) - 1) < 1e-12
    assert 0 < ev["mac_fraction"] < 1
    assert (calibrated / "eval.png").stat().st_size > 10_000
    assert set(ev["curves"]) == set(policies.POLICIES)


def test_design_json_carries_policy(calibrated):
    design = load_design(calibrated)
    pol = json.loads((calibrated / "policy.json").read_text())
    assert design.policy is not None and design.policy.thresholds == pol["thresholds"]
    assert design.policy.tables == pol["tables"]


def test_hardware_decisions_match_eval(calibrated):
    """The exit fractions in eval.json are those of the integer view on reference logits."""
    design = load_design(calibrated)
    logits, labels = split_logits(design, run_dataset(calibrated), "test")
    view = policies.integer_view(design.policy.kind, logits, design.policy.tables, design.policy.thresholds)
    ev = json.loads((calibrated / "eval.json").read_text())
    for k, e in enumerate(ev["exits"]):
        assert e["exit_fraction"] == float(np.mean(view.exit_index == k))


@pytest.mark.parametrize("kind", ["margin", "entropy", "patience"])
def test_other_policies_calibrate(calibrated, kind):
    if kind == "patience":
        res = calibrate_run(calibrated, kind, thresholds=[1])  # n = 1: every sample leaves at exit 0
        assert res["validation"]["exits"][0]["exit_fraction"] == 1.0
    else:
        res = calibrate_run(calibrated, kind, exit_rates=[0.7])
        reached = res["validation"]["exits"][0]["exit_fraction"]
        # the closest fraction any integer threshold reaches (ties in the score make steps)
        design = load_design(calibrated)
        logits, _ = split_logits(design, run_dataset(calibrated), "val")
        scores = policies.exit_scores(kind, logits, res["tables"])
        lo, hi = policies.threshold_range(kind, res["tables"], 0)
        candidates = np.unique(np.clip(scores.score[0], lo, hi))
        best = min(abs(float(policies.decide(scores, 0, int(t)).mean()) - 0.7) for t in candidates)
        assert abs(reached - 0.7) <= best + 1e-12
    evaluate_run(calibrated)
    calibrate_run(calibrated, "max_softmax", accuracy_delta=1.0)  # leave the fixture as it was


def test_inference_modes(calibrated):
    s0, s1 = subnet(calibrated, 0), subnet(calibrated, 1)
    assert s0["macs"] < s1["macs"] and s0["mac_fraction"] < 1
    a = anytime(calibrated)
    assert [e["accuracy"] for e in a["exits"]] == [s0["accuracy"], s1["accuracy"]]
    assert len(a["predictions"]) == a["samples"]
    design = load_design(calibrated)
    tables = policy_tables(design, "max_softmax")
    assert tables["num_exits"] == 2
    b = budgeted(calibrated, 0.6 * design.macs_no_exit)
    assert b["exit_fractions"][0] > 0.3


@pytest.mark.parametrize("args,needle", [
    (["calibrate", "{run}", "--policy", "softmin"], "softmin"),
    (["calibrate", "{run}", "--policy", "margin", "--thresholds", "-5"], "threshold"),
    (["calibrate", "{run}", "--policy", "patience", "--thresholds", "5"], "patience"),
    (["calibrate", "{run}", "--accuracy-delta", "-5"], "best reachable"),
    (["evaluate", "{empty}"], "codesign calibrate"),
])
def test_bad_input(calibrated, tmp_path, args, needle):
    (tmp_path / "empty").mkdir()
    res = run_cli(*[a.format(run=calibrated, empty=tmp_path / "empty") for a in args], cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_calibrate_before_train(tmp_path):
    with pytest.raises(UserError, match="codesign train"):
        calibrate_run(tmp_path, "margin")
