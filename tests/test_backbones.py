"""Backbone layers beyond a plain stride-1 conv chain (issue 17), bit exact through every back end:
torch == QONNX == the integer reference (export), HLS C simulation and Verilator, each on the whole
test split, and the analytical model's cycles against Verilator's.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from codesign import hls
from codesign.design import ir
from codesign.rtl import generate_rtl, load_manifest, verify_rtl
from hw_models.stages import decide
from tests.conftest import _trained, calibrated_copy, example

pytestmark = pytest.mark.needs("g++")  # verilator comes with the package (pyproject)


def _strided_cnn() -> dict:
    """The digits CNN downsampling by stride-2 convs instead of max pools: 8x8 -> 8x4x4 -> 16x2x2, the
    early exit on the first conv's map."""
    data = example("digits_cnn", train__epochs=15)
    data["name"] = "digits_cnn_strided"
    data["model"]["backbone"] = [
        {"type": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1, "stride": 2},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 16, "kernel": 3, "padding": 1, "stride": 2},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "linear", "out_features": 32},
        {"type": "relu"},
    ]
    data["model"]["exits"] = [{"after": 1, "head": [{"type": "flatten"}, {"type": "linear"}]}]
    return data


@pytest.fixture(scope="module")
def strided_run(tmp_path_factory) -> Path:
    run = _trained(tmp_path_factory, "digits_cnn_strided", _strided_cnn())
    return calibrated_copy(run, tmp_path_factory)


def _fold(run: Path, folding: dict[str, dict]) -> None:
    """`folding` written into design.json with its decisions, as `codesign dse` writes its choice."""
    ir.save_design(decide(ir.load_design(run), folding), run)


def _check_rtl(run: Path) -> None:
    """Verilator: the whole test split bit exact, and the throughput the system model predicts at an
    exit rate of one half (2000 samples) within 2 % of the simulated one."""
    from codesign.commands.sim_run import run_traffic

    report = verify_rtl(run)
    n = json.loads((run / "export" / "verify.json").read_text())["samples"]
    assert report["samples"] == n and report["mismatches"] == 0 and not report["timeout"], report
    r = run_traffic(run, "iid:0.5", samples=2000, seed=1, write=False)
    assert r["scoreboard"] == {"lost": 0, "duplicated": 0, "altered": 0}
    assert abs(r["model_error"]) < 0.02, r["model_error"]


def test_strided_convs_through_every_back_end(strided_run: Path) -> None:
    design = ir.load_design(strided_run)
    convs = [layer for layer in design.layers() if layer.kind == "conv2d"]
    assert [(c.stride, c.output.shape) for c in convs] == [([2, 2], [8, 4, 4]), ([2, 2], [16, 2, 2])]
    export = json.loads((strided_run / "export" / "verify.json").read_text())
    assert export["samples"] > 0 and export["mismatches"] == 0, export
    report = hls.hls_command(strided_run, csim=True, part=None, clock_ns=None, io="io_parallel")["csim"]
    assert report["samples"] == export["samples"] and report["mismatches"] == 0, report
    _check_rtl(strided_run)  # fully folded


def test_strided_convs_folded_and_reading_pixels_in_parallel(strided_run: Path, tmp_path: Path) -> None:
    """The parallel window (SIMD = KP * IC) and several input pixels per beat on a stride-2 first conv:
    the window walk makes 16 output pixels from 64 input pixels, so the first conv reads 4 per beat."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(strided_run, run, ignore=shutil.ignore_patterns("hls", "rtl"))
    _fold(run, {"s0_l0_conv2d": {"pe": 8, "simd": 9}, "s1_l0_conv2d": {"pe": 16, "simd": 24},
                "s1_l2_dense": {"pe": 8, "simd": 16}, "s0_head_l1_dense": {"pe": 10, "simd": 16}})
    first = ir.load_design(run).layer("s0_l0_conv2d")
    assert first.folding.pixels_per_beat == 4
    generate_rtl(run)
    man = load_manifest(run)
    assert man["input"]["pixels_per_beat"] == 4 and man["input"]["beats_per_sample"] == 16
    _check_rtl(run)


def test_a_graph_transform_that_rewires_a_branch_is_caught(strided_run: Path, monkeypatch) -> None:
    """qonnx's own channels-last pass gets this stage wrong (the head reads channels-last data through
    channels-first weights); the executed comparison in prepare_stage_onnx stops it before hls4ml."""
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean

    import codesign.hls.channels_last as cl
    from codesign.hls.project import prepare_stage_onnx
    from stage_ir.errors import StepFailed

    path = strided_run / "export" / "stage_0.onnx"
    prepare_stage_onnx(path)  # the fork-safe pass: the same outputs
    monkeypatch.setattr(cl, "convert_to_channels_last", lambda m: m.transform(ConvertToChannelsLastAndClean()))
    with pytest.raises(StepFailed, match="prepared for hls4ml .*(does not run|computes other values)"):
        prepare_stage_onnx(path)
