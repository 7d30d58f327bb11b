"""`codesign sim`: traffic replay on the generated RTL, scoreboard, watchdog, predicted vs measured."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stage_ir.errors import UserError
from codesign.design.ir import load_design, save_design
from hw_models.stages import decide
from codesign.rtl import Expected, compare, decode, generate_rtl, load_manifest, reference, simulate, split_inputs
from codesign.commands.sim_run import run_traffic, scoreboard
from hw_models.rtl_cost import cond_buffer_slots
from tests.conftest import calibrated_copy
from tests.test_config import run_cli
from tests.test_rtl_gen import CNN_WINDOW, set_folding

CLEAN = {"lost": 0, "duplicated": 0, "altered": 0}

# moderately unfolded: both stages near 64 cycles/sample, so tens of thousands of samples simulate in seconds
FOLDING = {"s0_l1_dense": (4, 16), "s0_head_l0_dense": (2, 16), "s1_l0_dense": (4, 16), "s1_l1_dense": (2, 16),
           "s1_head_l0_dense": (2, 8)}


@pytest.fixture(scope="module")
def rtl_run(mlp_run, tmp_path_factory):
    run = calibrated_copy(mlp_run, tmp_path_factory)
    set_folding(run, FOLDING)
    generate_rtl(run)
    return run


def variant(src: Path, tmp_path_factory, name: str, depth: int,
            folding: dict[str, tuple[int, int]] | None = None) -> Path:
    """A copy of a calibrated run with conditional buffer 0 `depth` samples deep (and `folding`), RTL generated."""
    run = tmp_path_factory.mktemp(name) / "run"
    shutil.copytree(src, run)
    design = load_design(run)
    depths = [depth] + [st.buffer_depth for st in design.stages[1:-1]]
    save_design(decide(design, buffer_depths=depths), run)  # and the decision FIFO that follows it
    if folding:
        set_folding(run, folding)
    generate_rtl(run)
    return run


@pytest.fixture(scope="module")
def gaps_run(rtl_run, tmp_path_factory):
    """rtl_run with stage 1 the bottleneck (BOTTLENECK) and a 4-sample conditional buffer: continuing
    samples arrive faster than stage 1 takes them, so the traffic below fills the buffer."""
    return variant(rtl_run, tmp_path_factory, "gaps", 4, BOTTLENECK)


@pytest.mark.parametrize("spec", ["data", "iid:0.6", "markov:0.7,32", "pattern:0", "pattern:1", "pattern:0,1", "trace"])
def test_scoreboard_under_backpressure_and_gaps(gaps_run, tmp_path, spec):
    """20,000 samples, 50 % output backpressure, 30 % input gaps into a small buffer before a slow
    stage: nothing lost, duplicated or altered, and the buffer full where the traffic continues often
    enough (not with every sample leaving early, nor with the digits' own exits: most leave at exit 0)."""
    if spec == "trace":
        trace = tmp_path / "trace.txt"
        trace.write_text("\n".join(str(v) for v in np.random.default_rng(5).integers(0, 2, 997)))
        spec = f"trace:{trace}"
    r = run_traffic(gaps_run, spec, samples=20_000, backpressure=0.5, gaps=0.3, seed=3, write=False)
    assert r["scoreboard"] == CLEAN
    assert not r["deadlock"] and r["samples"] == 20_000
    assert sum(e["count"] for e in r["exits"]) == 20_000
    assert r["buffers"][0]["depth"] == 4
    if spec not in ("data", "pattern:0"):
        check_full_buffer(r, gaps_run)


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
    return variant(rtl_run, tmp_path_factory, "shallow", 2)


def test_buffer_occupancy_and_stalls(shallow_run):
    """All samples leave at exit 0: the buffer holds only the samples awaiting their decision and stage 1
    never runs. None leave early under 99 % backpressure: the buffer fills all its slots and the last
    stage waits at the exit merge; at 50 % backpressure the output keeps up."""
    all_exit = run_traffic(shallow_run, "iid:1", samples=1000, seed=1, write=False)
    assert all_exit["scoreboard"] == CLEAN and not all_exit["deadlock"]
    _check_probes(all_exit, 2, shallow_run)
    assert all_exit["buffers"][0]["max_occupancy_samples"] <= 2
    assert all_exit["buffers"][0]["max_occupancy_beats"] < 2 * all_exit["buffers"][0]["beats_per_sample"]
    assert all_exit["stages"][1]["active_cycles"] == 0
    assert all_exit["stages"][1]["starved_cycles"] == all_exit["probe_cycles"]

    full = run_traffic(shallow_run, "iid:0", samples=1000, backpressure=0.99, seed=1, write=False)
    assert full["scoreboard"] == CLEAN and not full["deadlock"]
    _check_probes(full, 2, shallow_run)
    buf, (s0, s1) = full["buffers"][0], full["stages"]
    # every slot in use (a slot stays taken until its last beat is out, so the one being read holds fewer beats)
    assert buf["max_occupancy_samples"] == buf["slots"]
    assert buf["max_occupancy_beats"] > (buf["slots"] - 1) * buf["beats_per_sample"]
    assert s0["buffer_full_cycles"] > 0.1 * full["probe_cycles"]
    assert s1["result_blocked_cycles"] > 0.3 * full["probe_cycles"] and s1["stall_cycles"] > 0

    half = run_traffic(shallow_run, "iid:0", samples=1000, backpressure=0.5, gaps=0.3, seed=1, write=False)
    assert half["scoreboard"] == CLEAN and not half["deadlock"]
    _check_probes(half, 2, shallow_run)
    assert half["stages"][0]["stall_cycles"] > 0  # stage 0 (64 cycles a sample) is the bottleneck
    assert half["stages"][1]["result_blocked_cycles"] < 0.01 * half["probe_cycles"]
    assert half["stages"][1]["stall_cycles"] < 0.01 * half["probe_cycles"]


def test_scoreboard_flags_every_defect(rtl_run):
    """The scoreboard itself, on doctored copies of a clean simulation (40 samples, exits forced to
    alternate 0, 1): every kind of wrong hardware shows up in lost, duplicated or altered."""
    x = split_inputs(rtl_run)[:40]
    forced = np.resize([0, 1], len(x))  # even samples leave at exit 0, odd ones pass it and leave at exit 1
    logits, view = reference(load_design(rtl_run), x)
    expected = Expected(forced, view.scores.classes[forced, np.arange(len(x))])
    outcome, res = simulate(rtl_run, x, forced=forced.tolist(), expected_exits=forced)
    assert scoreboard(outcome, compare(outcome, logits, expected)) == CLEAN and not res.timeout
    assert sorted(outcome.logits[0]) == list(range(40)) and sorted(outcome.logits[1]) == list(range(1, 40, 2))

    def doctored(edit) -> tuple[dict[str, int], list[int]]:
        bad = copy.deepcopy(outcome)
        edit(bad)
        flags = compare(bad, logits, expected)
        return scoreboard(bad, flags), np.flatnonzero(flags).tolist()

    def logit_off(k: int, i: int):  # one logit of sample i at exit k off by one
        def edit(o):
            o.logits[k][i][2] += 1
        return edit

    def no_logits(k: int, i: int):
        def edit(o):
            del o.logits[k][i]
        return edit

    def leak(o):  # sample 4 left at exit 0, yet its (correct) exit-1 logits show up
        o.logits[1][4] = [int(v) for v in logits[1][4]]

    def wrong_exit(o):  # sample 6 leaves at exit 1 with exit 1's class: only the exit index is wrong
        o.exits[6], o.classes[6] = 1, view.scores.classes[1, 6]

    def wrong_class(o):
        o.classes[9] = (o.classes[9] + 1) % 10

    def lose(o):
        o.exits[8], o.classes[8] = -1, -1

    def altered(i: int) -> tuple[dict[str, int], list[int]]:
        return {**CLEAN, "altered": 1}, [i]

    assert doctored(logit_off(0, 3)) == altered(3)  # at exit 0, which sample 3 passed on its way to exit 1
    assert doctored(logit_off(1, 5)) == altered(5)  # at its own exit
    assert doctored(no_logits(0, 7)) == altered(7)  # exit 0 never showed sample 7, which went on
    assert doctored(leak) == altered(4)
    assert doctored(wrong_exit) == altered(6)
    assert doctored(wrong_class) == altered(9)
    assert doctored(lose) == ({**CLEAN, "lost": 1}, [8])

    # beats in the raw streams: a second result, a second logit beat, a beat tagged past the last sample
    man = load_manifest(rtl_run)
    cls_b, tag_b = man["fields"]["m_axis_tdata"]["class"][1], man["tag_bits"]
    tag_at = [man["num_classes"] * e["logits_bits"] for e in man["exits"]]  # debug beat: {meta, logits}

    def decoded(stream: int, insert) -> tuple[dict[str, int], list[int]]:
        raw = copy.deepcopy(res)
        beats, cycles = raw.outputs[stream], raw.out_cycles[stream]
        at, beat = insert(beats)
        beats.insert(at, beat)
        cycles.insert(at, cycles[at - 1])
        got = decode(man, raw, len(x))
        flags = compare(got, logits, expected)
        return scoreboard(got, flags), np.flatnonzero(flags).tolist()

    def result_of(beats: list[int], sample: int) -> int:
        return next(i for i, b in enumerate(beats) if (b >> cls_b) & ((1 << tag_b) - 1) == sample)

    def twice(beats):  # sample 4's result again, right after it
        i = result_of(beats, 4)
        return i + 1, beats[i]

    def at_exit_1_too(beats):  # sample 4 (exit 0) also leaves at exit 1, in order: between samples 3 and 5 there
        return result_of(beats, 5), beats[result_of(beats, 4)] | 1 << (cls_b + tag_b)

    def logits_twice(beats):  # exit 0 shows sample 10's logits twice
        return 11, beats[10]

    def no_such_sample(beats):  # exit 0 logits tagged 40: sample 39's plus one on the tag
        return len(beats), beats[-1] + (1 << tag_at[0])

    duplicated = ({**CLEAN, "duplicated": 1}, [])
    assert decoded(0, twice) == duplicated
    assert decoded(0, at_exit_1_too) == duplicated  # the exit-0 result counts, the second one is extra
    assert decoded(1, logits_twice) == duplicated
    assert decoded(1, no_such_sample) == duplicated


# stage 1 a quarter as fast as stage 0 (its first layer 256 cycles a sample, every other layer 64 or less):
# bursts of continuing samples, and even every other sample continuing, arrive faster than stage 1 takes
# them, so the conditional buffer fills and holds stage 0 up
BOTTLENECK = {**FOLDING, "s1_l0_dense": (1, 16)}
# long bursts of continuing samples (10 % leave at exit 0, mean burst 64), strict alternation, and runs of
# seven continuing samples between single early exits
ADVERSARIAL = ("markov:0.1,64", "pattern:0,1", "pattern:1,1,1,1,1,1,1,0")
# the CNN's stage 0 at 128 cycles a sample (CNN_WINDOW), its second conv folded to 288
CNN_BOTTLENECK = {**CNN_WINDOW, "s1_l0_conv2d": (8, 8)}


def check_full_buffer(r: dict, run: Path) -> None:
    """Nothing lost, duplicated or altered, no deadlock, every sample at the exit the traffic forced; and
    the run did test a full buffer: every slot of conditional buffer 0 in use, stage 0 waiting on it."""
    assert r["scoreboard"] == CLEAN and not r["deadlock"], (r["scoreboard"], r["failed_samples"])
    assert [e["count"] for e in r["exits"]] == [e["expected"] for e in r["exits"]]
    buf, (s0, s1) = r["buffers"][0], r["stages"]
    assert buf["depth"] == load_design(run).stages[0].buffer_depth
    assert buf["max_occupancy_samples"] == buf["slots"]
    assert s0["buffer_full_cycles"] > 0 and s1["stall_cycles"] > 0  # stage 1, the bottleneck, had work waiting


@pytest.fixture(scope="module", params=[1, 2], ids=lambda d: f"depth{d}")
def bottleneck_run(request, rtl_run, tmp_path_factory):
    """rtl_run with stage 1 the bottleneck and a 1- or 2-sample conditional buffer."""
    return variant(rtl_run, tmp_path_factory, f"bottleneck{request.param}", request.param, BOTTLENECK)


@pytest.mark.parametrize("spec", ADVERSARIAL)
def test_scoreboard_with_the_buffer_full(bottleneck_run, spec):
    """Adversarial traffic into a full conditional buffer under 50 % output backpressure."""
    check_full_buffer(run_traffic(bottleneck_run, spec, samples=1000, backpressure=0.5, seed=2, write=False),
                      bottleneck_run)


@pytest.fixture(scope="module")
def cnn_sim_run(cnn_run, tmp_path_factory):
    """The digits CNN with stage 1 the bottleneck and a 2-sample conditional buffer."""
    return variant(calibrated_copy(cnn_run, tmp_path_factory), tmp_path_factory, "cnn_sim", 2, CNN_BOTTLENECK)


def test_cnn_scoreboard_with_the_buffer_full(cnn_sim_run):
    """A CNN (line buffers, pooling, an exit head after a conv block): bursty traffic into a full
    conditional buffer under 50 % output backpressure."""
    check_full_buffer(run_traffic(cnn_sim_run, "markov:0.3,16", samples=400, backpressure=0.5, seed=5,
                                  write=False), cnn_sim_run)


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
