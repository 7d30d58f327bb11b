"""Calibration, evaluation and inference modes on a trained run (issue: exit policies)."""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from stage_ir import policies
from codesign.frontend.calibrate_run import calibrate_run, policy_tables, run_dataset, split_logits
from stage_ir.errors import UserError
from codesign.frontend.evaluate import evaluate_run
from codesign.frontend.inference import anytime, budgeted, subnet
from codesign.design.ir import load_design
from codesign.design.reference import run_design
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


def _max_softmax_leaves(z: np.ndarray, table: dict, threshold: int) -> np.ndarray:
    """docs/policies.md's max_softmax unit, written out: sum_j E[(top1 - z_j) >> S] <= T, where an
    index at or beyond the table's N entries contributes 0."""
    exp = np.append(np.asarray(table["exp"], dtype=np.int64), 0)  # entry N: beyond the table
    idx = np.minimum((z.max(axis=1, keepdims=True) - z) >> table["s"], table["n"])
    return exp[idx].sum(axis=1) <= threshold


def _layer_macs(design, layer) -> int:
    """Weights times output positions (a dense layer has one position); no weights, no MACs."""
    if not getattr(layer, "weight", None):
        return 0
    w = design.array(layer.weight)
    return w.size * (int(np.prod(layer.output.shape)) // w.shape[0])


def test_eval_json_figures_from_the_integer_reference(calibrated):
    """Every figure of eval.json, recomputed here in plain numpy from the integer reference's
    logits and the documented max_softmax rule: nothing from stage_ir.policies, calibration or
    evaluate, so a wrong count, accuracy or MAC figure there cannot agree with itself."""
    ev = evaluate_run(calibrated)
    assert json.loads((calibrated / "eval.json").read_text()) == ev
    design = load_design(calibrated)
    pol = design.policy
    assert pol.kind == "max_softmax"  # the fixture's policy; the rule below is that policy's
    for tab in pol.tables["exits"]:  # the exp table is the doc's E[i] = round(2**P exp(-i 2**S 2**-F))
        want = [math.floor(2.0 ** tab["p"] * math.exp(-(i << tab["s"]) * 2.0 ** -tab["frac"]) + 0.5)
                for i in range(tab["n"])]
        assert tab["exp"] == want
    test = run_dataset(calibrated).test
    logits, labels = run_design(design, test.x), test.y
    n, last = len(labels), design.num_exits - 1
    classes = np.stack([np.argmax(z, axis=1) for z in logits])
    leaves = np.full(n, last)
    for k in reversed(range(last)):  # the first exit that lets a sample go takes it
        leaves = np.where(_max_softmax_leaves(logits[k], pol.tables["exits"][k], pol.thresholds[k]), k, leaves)
    right = classes[leaves, np.arange(n)] == labels
    backbone = [sum(_layer_macs(design, l) for l in st.layers) for st in design.stages]
    heads = [sum(_layer_macs(design, l) for l in st.head) for st in design.stages]
    to_exit = np.cumsum(np.add(backbone, heads))  # leaving at exit k: every stage and head up to k ran
    no_exit = sum(backbone) + heads[-1]  # the network without early exits

    assert ev["samples"] == n and len(ev["exits"]) == last + 1
    for k, e in enumerate(ev["exits"]):
        here = leaves == k
        assert e["exit_fraction"] == here.sum() / n, k
        assert e["accuracy_of_exited"] == (right[here].sum() / here.sum() if here.any() else None), k
        assert e["accuracy_alone"] == (classes[k] == labels).sum() / n, k
        assert e["macs_to_exit"] == to_exit[k] and e["threshold"] == (pol.thresholds[k] if k < last else None)
    assert ev["overall_accuracy"] == right.sum() / n
    assert ev["final_accuracy"] == (classes[last] == labels).sum() / n
    assert ev["macs_no_exit"] == no_exit
    assert ev["mean_macs"] == to_exit[leaves].sum() / n
    assert ev["mac_fraction"] == ev["mean_macs"] / no_exit
    assert 0 < (leaves < last).mean() < 1  # the check above saw samples at both exits
    # the per-sample exit sequence the HLS / RTL runs compare against
    assert ev["exit_sequence_digest"] == hashlib.sha256(leaves.astype(np.int64).tobytes()).hexdigest()[:16]


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
