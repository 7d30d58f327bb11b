"""hw_models' system throughput held to Verilator: what `codesign sim` predicts vs what the RTL runs.

The digits MLP folded to 64 | 256 cycles per sample (benchmarks/model_validation.py's variant
helpers) with conditional buffers of depth 1 and 2: near and past the balance point
(q_1 * 256 >= 64) a small buffer costs throughput, so the finite-buffer rules of the model
(slot taken with the first beat, decision latency from the last, slot held until read out)
decide the figure. Replayed on the generated RTL with run_traffic (i.i.d. and bursty Markov
exits, forced by the testbench), compared with the prediction it reports.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codesign.design.ir import load_design
from codesign.commands.sim_run import SIM_MIN_SAMPLES, run_traffic
from hw_models import estimate
from hw_models.flow_sim import BufferTiming, effective_depths, simulate_flow
from hw_models.rtl_timing import boundary_slots

from tests.conftest import benchmark, calibrated_copy
from tests.test_hw_models import cnn_design as _design

MAX_MODEL_ERROR = 0.03  # |predicted - measured| / measured, per configuration
TARGETS = [64, 256]     # cycles per sample of stage 0 and stage 1
# (buffer depth, traffic): stage 1 is the bottleneck on average at exit rate 0.7 (0.3 * 256 > 64)
# and balanced at 0.75; Markov bursts of hard samples (runs of L / exit rate: 10.7 at 0.75, 8) fill the buffer
CONFIGS = [(1, "iid:0.75"), (1, "iid:0.7"), (1, "markov:0.75,8"), (2, "iid:0.75"), (2, "markov:0.7,4")]


@pytest.fixture(scope="module")
def variants(mlp_run, tmp_path_factory) -> dict[int, Path]:
    """Buffer depth -> the calibrated digits MLP folded to TARGETS with that depth, RTL generated."""
    mv = benchmark("model_validation")
    base = calibrated_copy(mlp_run, tmp_path_factory)
    work = tmp_path_factory.mktemp("model_validation")
    return {d: mv.make_variant(base, work, f"mlp_64_256_d{d}", TARGETS, [d]) for d in sorted({c[0] for c in CONFIGS})}


@pytest.mark.parametrize("depth,spec", CONFIGS)
def test_predicted_throughput_matches_verilator(variants, depth, spec):
    run = variants[depth]
    r = run_traffic(run, spec, samples=SIM_MIN_SAMPLES, write=False)
    assert r["scoreboard"] == {"lost": 0, "duplicated": 0, "altered": 0} and not r["deadlock"]
    design = load_design(run)
    fractions = [e["fraction"] for e in r["exits"]]
    est = estimate(design, [design.device], fractions, burst_length=r["burst_length"])
    ii = [s["ii_cycles"] for s in est["stages"]]
    assert ii == TARGETS and est["buffer_depths"] == [depth]
    # stage 1 at (within the 5 % a run's realised exit rate drifts) or past the balance point, and
    # the buffer costs throughput: the configuration exercises the finite-buffer rules, not just
    # min_k theta_k / q_k
    assert fractions[1] * ii[1] >= 0.95 * ii[0]
    assert est["throughput_samples_per_cycle"] < 0.95 * est["throughput_infinite_buffers_samples_per_cycle"]
    assert est["throughput_samples_per_cycle"] == pytest.approx(r["predicted_throughput_samples_per_cycle"])
    assert abs(r["model_error"]) <= MAX_MODEL_ERROR, (
        f"depth {depth} {spec}: measured {r['throughput_samples_per_cycle']:.5f}, predicted "
        f"{r['predicted_throughput_samples_per_cycle']:.5f} samples/cycle ({100 * r['model_error']:+.2f} %)")


def test_fold_for_targets_meets_targets_cheaply():
    mv = benchmark("model_validation")
    design = _design()
    for targets in ([64, 256], [576, 2304], [10 ** 6, 10 ** 6]):
        fold = mv.fold_for_targets(design, targets)
        for k, stage in enumerate(design.stages):
            for layer in stage.all_layers:
                if not layer.computes:
                    continue
                geo = layer.geometry
                f = fold[layer.name]
                cycles = geo.positions * geo.mh / f["pe"] * geo.mw / f["simd"]
                slowest = geo.positions * geo.mh * geo.mw
                assert cycles <= targets[k] or (f["pe"], f["simd"]) == (geo.mh, max(geo.simds))
                if targets[k] >= slowest:
                    assert f == {"pe": 1, "simd": 1}


def test_decision_fifo_makes_the_whole_buffer_depth_effective():
    # the generator's decision FIFO (depth + 1) holds more decisions than the buffer holds samples:
    # the exit path no longer caps the buffer (before it, depth 4 and 64 ran identical cycle counts)
    design = _design()
    for depth in (1, 4, 64):
        caps, queues = boundary_slots(design, depths=[depth])
        assert len(caps) == len(design.stages) - 1 and all(c > depth for c in caps)
        assert list(effective_depths([depth], caps[:1])) == [depth]
        bt = estimate(design, ["xc7z020"], [0.5, 0.5], buffer_depths=[depth])["buffer_timing"]
        assert bt["decision_capacity_samples"] == list(caps) and bt["input_queue_samples"] == list(queues)
        assert bt["effective_depths"] == [depth]


def test_input_queue_lets_the_head_leave_one_sample_early():
    # stage 1 busy with sample 0; sample 1 continues: with a one-sample queue it leaves the buffer at once
    exits = np.array([[1], [1], [0], [0], [0], [0]])
    starts = {}
    for q in (0, 1):
        s = np.zeros((len(exits), 1))
        simulate_flow(np.array([[10.0, 100.0]]), [1], None, 1.0,
                      BufferTiming(order="in_order", decision_latency=0, input_queue=q), samples=len(exits), warmup=0,
                      exits=exits, starts=s)
        starts[q] = s[:, 0]
    assert starts[1][3] < starts[0][3]  # sample 3 starts earlier when stage 1 queues sample 1


def test_a_slot_taken_with_the_first_beat_holds_the_stage_longer():
    # depth 1 (two slots), every sample continues into a slow stage 1: a slot taken write_span
    # cycles before the write frees that much later for the next sample, and stage 0 waits for it
    exits = np.ones((8, 1), dtype=int)
    starts = {}
    for span in (0.0, 30.0):
        s = np.zeros((len(exits), 1))
        simulate_flow(np.array([[40.0, 100.0]]), [1], None, 1.0, BufferTiming(write_span=span),
                      samples=len(exits), warmup=0, exits=exits, starts=s)
        starts[span] = s[:, 0]
    assert np.all(np.diff(starts[0.0])[-2:] == 100) and np.all(np.diff(starts[30.0])[-2:] == 100)  # stage 1's pace
    assert starts[30.0][-1] == starts[0.0][-1] + 30
