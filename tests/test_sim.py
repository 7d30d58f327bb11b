"""`codesign sim`: traffic replay on the generated RTL, scoreboard, watchdog, predicted vs measured."""
from __future__ import annotations

import json

import numpy as np
import pytest

from codesign.errors import UserError
from codesign.ir import load_design, save_design
from codesign.rtl import generate_rtl
from codesign.sim_run import run_traffic
from tests.conftest import calibrated_copy
from tests.test_config import run_cli

# moderately unfolded: both stages near 64 cycles/sample, so 100,000 samples simulate in seconds
FOLDING = {"s0_l1_dense": (4, 16), "s0_head_l0_dense": (2, 16), "s1_l0_dense": (4, 16), "s1_l1_dense": (2, 16),
           "s1_head_l0_dense": (2, 8)}


@pytest.fixture(scope="module")
def rtl_run(mlp_run, tmp_path_factory):
    run = calibrated_copy(mlp_run, tmp_path_factory)
    design = load_design(run)
    for name, (pe, simd) in FOLDING.items():
        layer = design.layer(name)
        layer.folding.pe, layer.folding.simd = pe, simd
    save_design(design, run)
    generate_rtl(run)
    return run


@pytest.mark.parametrize("spec", ["data", "iid:0.6", "markov:0.7,32", "pattern:0", "pattern:1", "pattern:0,1", "trace"])
def test_scoreboard_under_backpressure_and_gaps(rtl_run, tmp_path, spec):
    """100,000 samples, 50 % output backpressure, 30 % input gaps: nothing lost, duplicated or altered."""
    if spec == "trace":
        trace = tmp_path / "trace.txt"
        trace.write_text("\n".join(str(v) for v in np.random.default_rng(5).integers(0, 2, 997)))
        spec = f"trace:{trace}"
    r = run_traffic(rtl_run, spec, samples=100_000, backpressure=0.5, gaps=0.3, seed=3)
    assert r["scoreboard"] == {"lost": 0, "duplicated": 0, "altered": 0}
    assert not r["deadlock"] and r["samples"] == 100_000
    assert sum(e["count"] for e in r["exits"]) == 100_000


def test_forced_rates_and_sim_json(rtl_run):
    r = run_traffic(rtl_run, "iid:0.25", samples=4000, seed=1)
    saved = json.loads((rtl_run / "sim" / "iid_0.25.json").read_text())
    assert saved["samples"] == 4000 and saved["scoreboard"]["lost"] == 0
    assert abs(r["exits"][0]["fraction"] - 0.25) < 0.03
    for key in ("cycles", "throughput_samples_per_cycle", "predicted_throughput_samples_per_cycle", "latency_cycles"):
        assert key in saved
    lat = saved["latency_cycles"]
    assert lat[0]["min"] <= lat[0]["mean"] <= lat[0]["p99"] <= lat[0]["max"]
    assert lat[1]["mean"] > lat[0]["mean"]  # the final exit is further down the pipeline


def test_sim_cli_and_bad_input(rtl_run, tmp_path):
    ok = run_cli("sim", str(rtl_run), "--traffic", "iid:0.5", "--samples", "500", cwd=tmp_path)
    assert ok.returncode == 0 and "scoreboard lost 0, duplicated 0, altered 0" in ok.stdout, ok.stderr
    for args, needle in ((["--traffic", "iid"], "grammar"), (["--traffic", "iid:1.5"], "[0, 1]"),
                         (["--traffic", "pattern:0,7"], "exit index 7"), (["--backpressure", "1.5"], "probability")):
        bad = run_cli("sim", str(rtl_run), *args, cwd=tmp_path)
        assert bad.returncode == 2 and needle in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    (tmp_path / "bare").mkdir()
    missing = run_cli("sim", str(tmp_path / "bare"), cwd=tmp_path)
    assert missing.returncode == 2 and "codesign rtl" in missing.stderr


def test_not_generated(tmp_path):
    with pytest.raises(UserError, match="codesign rtl"):
        run_traffic(tmp_path, "data")


def test_watchdog_stops_a_stalled_run(rtl_run):
    """A consumer that never accepts: the pipeline fills, nothing moves, the watchdog ends the run."""
    from codesign.rtl import simulate, split_inputs

    x = split_inputs(rtl_run)[:200]
    outcome, res = simulate(rtl_run, x, expected_exits=[0] * len(x), p_ready=0.0, watchdog=5_000,
                            max_cycles=50_000_000)
    assert res.timeout and res.cycles < 100_000
    assert (outcome.exits < 0).all()  # nothing came out: a run like this reports lost samples, never passes
