"""`codesign estimate` and `codesign dse` on a calibrated run."""
from __future__ import annotations

import json

import pytest

from codesign.design.ir import load_design
from tests.conftest import calibrated_copy
from tests.test_config import run_cli


@pytest.fixture(scope="module")
def run(mlp_run, tmp_path_factory):
    return calibrated_copy(mlp_run, tmp_path_factory, evaluate=True)


def test_estimate_three_devices(run, tmp_path):
    res = run_cli("estimate", str(run), "--device", "xc7z020,xczu3eg,xc7a35t", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    est = json.loads((run / "estimate.json").read_text())
    assert set(est["devices"]) == {"xc7z020", "xczu3eg", "xc7a35t"}
    for d in est["devices"].values():
        assert {"lut", "ff", "dsp", "bram", "throughput_samples_per_cycle"} <= set(d)
    assert [e["index"] for e in est["exits"]] == [0, 1]
    assert (run / "estimate.md").read_text().strip() and (run / "estimate.png").stat().st_size > 5000


def test_dse_writes_choice_into_design(run, tmp_path):
    res = run_cli("dse", str(run), "--device", "xc7z020", "--budget", "0.5", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    dse = json.loads((run / "dse.json").read_text())
    chosen, base = dse["chosen"], dse["baseline"]
    assert dse["predicted_gain"] == pytest.approx(chosen["throughput_samples_per_cycle"] / base["throughput_samples_per_cycle"])
    assert chosen["accuracy"] >= dse["min_accuracy"] - 1e-12
    design = load_design(run)
    for name, fold in chosen["folding"].items():
        assert design.layer(name).folding.model_dump(include={"pe", "simd"}) == fold
    assert design.policy.thresholds == chosen["thresholds"]
    rate = json.loads((run / "timings.json").read_text())["dse"]["dse.json.points_per_second"]
    assert "points_per_second" not in dse and rate > 0 and (run / "dse.png").stat().st_size > 5000


def test_device_file(run, tmp_path):
    part = tmp_path / "parts.yaml"
    part.write_text("xc7s50: {family: xc7, lut: 32600, ff: 65200, dsp: 120, bram36: 75, uram: 0, clock_ns: 10.0}\n")
    res = run_cli("estimate", str(run), "--device-file", str(part), "--device", "xc7s50", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "xc7s50" in json.loads((run / "estimate.json").read_text())["devices"]


@pytest.mark.parametrize("args,needle", [
    (["estimate", "{run}", "--device", "xc9000"], "xc7z020"),
    (["dse", "{run}", "--budget", "0"], "(0, 1]"),
    (["dse", "{run}", "--device", "xc7a35t", "--budget", "0.001"], "does not fit"),
])
def test_bad_input(run, tmp_path, args, needle):
    res = run_cli(*[a.format(run=run) for a in args], cwd=tmp_path)
    assert res.returncode == 2 and needle in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
