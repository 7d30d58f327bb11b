"""`codesign sim`: traffic replay on the generated RTL, scoreboard, watchdog, predicted vs measured."""
from __future__ import annotations

import json

import numpy as np
import pytest

from codesign.errors import UserError
from codesign.ir import load_design, save_design
from codesign.rtl import generate_rtl, load_manifest
from codesign.sim_run import run_traffic
from hw_models.rtl_cost import cond_buffer_slots
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
    _check_probes(saved, load_design(rtl_run).stages[0].buffer_depth, rtl_run)
    # no backpressure, a 32-sample buffer: nothing downstream ever holds a stage up
    assert all(st["result_blocked_cycles"] == 0 and st["buffer_full_cycles"] == 0 for st in saved["stages"])
    assert saved["stages"][1]["stall_cycles"] == 0


def _check_probes(r: dict, depth: int, run) -> None:
    """Invariants of the sim JSON's buffer and stage counters (docs/rtl.md, "Traffic simulation")."""
    (buf,) = r["buffers"]  # one conditional buffer between the two stages
    assert buf["boundary"] == 0 and buf["depth"] == depth and buf["slots"] == cond_buffer_slots(depth)
    cap = buf["slots"] * buf["beats_per_sample"]
    assert 0 < buf["max_occupancy_beats"] <= cap
    # a sample holds a slot from its first beat in until it is dropped or its last beat is out
    assert 0 < buf["max_occupancy_samples"] <= buf["slots"]
    assert buf["mean_occupancy_beats"] <= buf["max_occupancy_beats"]
    assert [st["stage"] for st in r["stages"]] == [0, 1]
    for st in r["stages"]:
        assert st["stall_cycles"] + st["starved_cycles"] + st["active_cycles"] <= r["probe_cycles"]
    # active = input beats taken: every sample's beats into stage 0, the forwarded samples' beats into stage 1
    man = load_manifest(run)
    assert r["stages"][0]["active_cycles"] == r["samples"] * man["input"]["beats_per_sample"]
    assert r["stages"][1]["active_cycles"] == r["exits"][1]["count"] * buf["beats_per_sample"]
    assert r["stages"][1]["buffer_full_cycles"] == 0  # the last stage has no buffer


def test_sim_cli_and_bad_input(rtl_run, tmp_path):
    ok = run_cli("sim", str(rtl_run), "--traffic", "iid:0.5", "--samples", "500", cwd=tmp_path)
    assert ok.returncode == 0 and "scoreboard lost 0, duplicated 0, altered 0" in ok.stdout, ok.stderr
    for args, needle in ((["--traffic", "iid"], "grammar"), (["--traffic", "iid:1.5"], "[0, 1]"),
                         (["--traffic", "pattern:0,7"], "exit index 7"), (["--backpressure", "1.5"], "probability")):
        bad = run_cli("sim", str(rtl_run), *args, cwd=tmp_path)
        assert bad.returncode == 2 and needle in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    (tmp_path / "bare").mkdir()
    missing = run_cli("sim", str(tmp_path / "bare"), cwd=tmp_path)
    assert missing.returncode == 2 and "codesign export" in missing.stderr


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


@pytest.fixture(scope="module")
def shallow_run(rtl_run, tmp_path_factory):
    """rtl_run with a 2-sample conditional buffer: backpressure can fill it."""
    import shutil

    run = tmp_path_factory.mktemp("shallow") / "run"
    shutil.copytree(rtl_run, run)
    design = load_design(run)
    design.stages[0].buffer_depth = 2
    save_design(design, run)
    generate_rtl(run)
    return run


def test_buffer_occupancy_and_stalls(shallow_run):
    """All samples leave at exit 0: the buffer holds only the samples awaiting their decision and stage 1
    never runs. None leave early under 99 % backpressure: the buffer fills all its slots and the last
    stage waits at the exit merge; at 50 % backpressure the output keeps up."""
    all_exit = run_traffic(shallow_run, "iid:1", samples=1000, seed=1, write=False)
    _check_probes(all_exit, 2, shallow_run)
    assert all_exit["buffers"][0]["max_occupancy_samples"] <= 2
    assert all_exit["buffers"][0]["max_occupancy_beats"] < 2 * all_exit["buffers"][0]["beats_per_sample"]
    assert all_exit["stages"][1]["active_cycles"] == 0
    assert all_exit["stages"][1]["starved_cycles"] == all_exit["probe_cycles"]

    full = run_traffic(shallow_run, "iid:0", samples=1000, backpressure=0.99, seed=1, write=False)
    _check_probes(full, 2, shallow_run)
    buf, (s0, s1) = full["buffers"][0], full["stages"]
    # every slot in use (a slot stays taken until its last beat is out, so the one being read holds fewer beats)
    assert buf["max_occupancy_samples"] == buf["slots"]
    assert buf["max_occupancy_beats"] > (buf["slots"] - 1) * buf["beats_per_sample"]
    assert s0["buffer_full_cycles"] > 0.1 * full["probe_cycles"]
    assert s1["result_blocked_cycles"] > 0.3 * full["probe_cycles"] and s1["stall_cycles"] > 0

    half = run_traffic(shallow_run, "iid:0", samples=1000, backpressure=0.5, gaps=0.3, seed=1, write=False)
    _check_probes(half, 2, shallow_run)
    assert half["stages"][0]["stall_cycles"] > 0  # stage 0 (64 cycles a sample) is the bottleneck
    assert half["stages"][1]["result_blocked_cycles"] < 0.01 * half["probe_cycles"]
    assert half["stages"][1]["stall_cycles"] < 0.01 * half["probe_cycles"]


@pytest.mark.needs("fst", "pywellen")
def test_fst_waveform(rtl_run, tmp_path):
    """`codesign sim --fst`: RUN/sim/<name>.fst, an FST file (header block first) in which the result stream
    toggles; without the lz4/zlib headers one line says what to install."""
    ok = run_cli("sim", str(rtl_run), "--traffic", "iid:0.5", "--samples", "20", "--fst", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    wave = rtl_run / "sim" / "iid_0.5.fst"
    assert f"waveform -> {wave}" in ok.stdout
    head = wave.read_bytes()[:9]
    assert head[0] == 0 and int.from_bytes(head[1:9], "big") == 329  # FST_BL_HDR, fixed header length
    assert wave.stat().st_size > 10_000
    assert json.loads((rtl_run / "sim" / "iid_0.5.json").read_text())["waveform"] == "sim/iid_0.5.fst"  # run-relative
    import pywellen

    signals = {v.full_name: v for v in pywellen.Waveform(str(wave)).all_vars()}
    rises = [t for t, v in signals["TOP.out_tvalid"].tv if v == 1]
    assert 1 <= len(rises) <= 20  # results leave one by one (back-to-back ones share a high phase)


def test_fst_missing_headers_is_one_line(rtl_run, monkeypatch):
    import importlib

    # the module itself: the package `sim` exports a function named `build`
    monkeypatch.setattr(importlib.import_module("sim.build"), "fst_missing", lambda: ["liblz4-dev"])
    with pytest.raises(UserError, match=r"apt-get install liblz4-dev$"):
        run_traffic(rtl_run, "iid:0.5", samples=10, fst=True)
