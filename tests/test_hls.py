"""HLS generation and C simulation of whole designs against the integer reference.

One compile per design (module fixtures on copies of the session runs, so that
calibrating here never touches other tests' runs).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from codesign import hls

from codesign.design import ir
from stage_ir import policies as pol
from codesign.frontend.calibrate_run import calibrate_run
from codesign.design.reference import run_design
from codesign.store.timings import without_wall_clock
import stage_ir

pytestmark = pytest.mark.needs("g++")


def _copy(run: Path, tmp: Path) -> Path:
    dest = tmp / "run"
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("hls"))
    return dest


def _simulated(run: Path, tmp: Path, policy: str, **target) -> tuple[Path, dict]:
    run = _copy(run, tmp)
    calibrate_run(run, policy, **target)
    return run, hls.hls_command(run, csim=True, part=None, clock_ns=None, io="io_parallel")


@pytest.fixture(scope="module")
def mlp_sim(mlp_run, tmp_path_factory):
    return _simulated(mlp_run, tmp_path_factory.mktemp("hls_mlp"), "max_softmax", accuracy_delta=1.0)


@pytest.fixture(scope="module")
def cnn_sim(cnn_run, tmp_path_factory):
    return _simulated(cnn_run, tmp_path_factory.mktemp("hls_cnn"), "entropy", accuracy_delta=1.0)


@pytest.fixture(scope="module")
def mlp3_sim(mlp3_run, tmp_path_factory):
    # exit-rate targets so that all three exits see traffic
    return _simulated(mlp3_run, tmp_path_factory.mktemp("hls_mlp3"), "margin", exit_rates=[0.6, 0.2])


def _reference(run: Path) -> tuple[stage_ir.Design, list[np.ndarray]]:
    design = ir.load_design(run)
    return design, run_design(design, hls.test_split(run))


@pytest.mark.parametrize("name", ["mlp_sim", "cnn_sim", "mlp3_sim"])
def test_csim_bit_exact(name, request):
    run, report = request.getfixturevalue(name)
    design, logits = _reference(run)
    result = report["csim"]
    assert without_wall_clock(result) == json.loads((run / "hls" / "csim.json").read_text())
    assert result["samples"] == len(logits[0]) > 0
    assert result["mismatches"] == 0
    policy = design.policy
    view = pol.integer_view(policy.kind, logits, policy.tables, policy.thresholds)
    want = np.bincount(view.exit_index, minlength=design.num_exits)
    assert [e["samples"] for e in result["exits"]] == want.tolist()
    assert [e["index"] for e in result["exits"]] == list(range(design.num_exits))
    assert result["compile_seconds"] > 0 and result["run_seconds"] > 0


def test_three_exits_all_used(mlp3_sim):
    _, report = mlp3_sim
    assert all(e["samples"] > 0 for e in report["csim"]["exits"])


def _check_thresholds(run: Path, report: dict, threshold_sets, tmp_path: Path) -> None:
    design, logits = _reference(run)
    policy = design.policy
    hls_dir = Path(report["hls_dir"])
    binary = hls.csim_binary(hls_dir, report["top"])
    seen = set()
    for i, thresholds in enumerate(threshold_sets):
        scratch = tmp_path / f"t{i}"
        scratch.mkdir()
        sim = hls.run_csim(binary, hls_dir / hls.TOP_DIR, thresholds, design.num_exits, scratch)
        view = pol.integer_view(policy.kind, logits, policy.tables, thresholds)
        np.testing.assert_array_equal(sim.exit_index, view.exit_index, err_msg=f"thresholds {thresholds}")
        np.testing.assert_array_equal(sim.exit_class, view.exit_class, err_msg=f"thresholds {thresholds}")
        seen.add(tuple(np.bincount(sim.exit_index, minlength=design.num_exits)))
    assert len(seen) == len(threshold_sets)  # every register setting moved the exit fractions


def test_threshold_registers_at_run_time(mlp3_sim, tmp_path):
    """The same binary, other register values: exit fractions move exactly as the reference predicts."""
    run, report = mlp3_sim
    design, logits = _reference(run)
    tables = design.policy.tables
    scores = pol.exit_scores("margin", logits, tables)
    quartiles = [[int(np.quantile(scores.score[k], q)) for k in range(2)] for q in (0.25, 0.5, 0.9)]
    never = [pol.never_threshold("margin", tables, k) for k in range(2)]
    _check_thresholds(run, report, [never, [0, 0], [never[0], 0], *quartiles], tmp_path)


def test_patience_state_travels_through_the_buffers(mlp3_run, tmp_path):
    run, report = _simulated(mlp3_run, tmp_path, "patience", thresholds=[1, 2])
    assert report["csim"]["mismatches"] == 0
    _check_thresholds(run, report, [[2, 2], [2, 3], [1, 2]], tmp_path)  # n_0 > 1: exit 0 never fires


def test_generated_files_are_byte_identical(mlp_sim, tmp_path):
    run, _ = mlp_sim
    for name in ("a", "b"):
        hls.generate(run, out=tmp_path / name)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert not any(str(run) in (tmp_path / "a" / rel).read_text(errors="ignore") for rel in files
                   if rel.suffix in (".h", ".cpp", ".tcl", ".yml", ".sh"))
    # the same as what hls_command wrote (minus the C simulation's build products)
    for rel in files:
        assert (run / "hls" / rel).read_bytes() == (tmp_path / "a" / rel).read_bytes(), rel


def test_project_layout(mlp_sim):
    run, report = mlp_sim
    hls_dir = run / "hls"
    top = report["top"]
    for rel in (f"top/firmware/{top}.cpp", f"top/firmware/{top}.h", "top/firmware/threshold_unit.h",
                f"top/tb/{top}_test.cpp", "top/build_prj.tcl", "top/tb_data/tb_input_features.dat",
                "top/tb_data/tb_expected.dat", "stage_0/build_prj.tcl", "stage_1/build_prj.tcl", "csim.json"):
        assert (hls_dir / rel).is_file(), rel
    tcl = (hls_dir / "top" / "build_prj.tcl").read_text()
    assert "set part \"xc7z020clg400-1\"" in tcl and "csynth_design" in tcl and "cosim_design" in tcl
    source = (hls_dir / "top" / "firmware" / f"{top}.cpp").read_text()
    assert "#pragma HLS DATAFLOW" in source and "s_axilite port=threshold_0" in source
    assert "axis port=in" in source


def test_reuse_factor_from_design(mlp_sim, tmp_path):
    """layer.reuse_factor reaches hls4ml; a layer with ReuseFactor > 1 gets the Resource strategy."""
    run, _ = mlp_sim
    run = _copy(run, tmp_path)
    design = ir.load_design(run)
    design.stages[0].layers[-1].reuse_factor = 4
    ir.save_design(design, run)
    hls.generate(run)
    params = (run / "hls" / "stage_0" / "firmware" / "parameters.h").read_text()
    dense = [block for block in params.split("struct config")[1:] if "multiplier_limit" in block]
    assert "reuse_factor = 4" in dense[0] and "nnet::resource" in dense[0]
    assert "reuse_factor = 1" in dense[1] and "nnet::latency" in dense[1]
