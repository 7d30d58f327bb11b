"""benchmarks/model_validation.py helpers and the RTL timing rules the benchmark validated (fast, no simulation)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from hw_models import estimate
from hw_models.flow_sim import BufferTiming, effective_depths, simulate_flow
from hw_models.geometry import matrix_geometry
from hw_models.rtl_timing import boundary_slots

from tests.test_hw_models import cnn_design as _design

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("model_validation", ROOT / "benchmarks" / "model_validation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fold_for_targets_meets_targets_cheaply():
    mv = _bench()
    design = _design()
    for targets in ([64, 256], [576, 2304], [10 ** 6, 10 ** 6]):
        fold = mv.fold_for_targets(design, targets)
        for k, stage in enumerate(design["stages"]):
            for layer in stage.get("layers", []) + stage.get("head", []):
                if layer["kind"] not in ("dense", "conv2d"):
                    continue
                geo = matrix_geometry(layer)
                f = fold[layer["name"]]
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
        assert len(caps) == len(design["stages"]) - 1 and all(c > depth for c in caps)
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
