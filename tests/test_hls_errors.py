"""Bad input to `codesign hls`: one clear UserError line, nothing half-written."""
from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
from onnx import helper

from codesign import hls

from codesign.design import ir
from codesign.frontend.calibrate_run import calibrate_run
from stage_ir.errors import UserError


@pytest.fixture()
def run(mlp_run, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(mlp_run, dest, ignore=shutil.ignore_patterns("hls"))
    return dest


def _hls(run: Path, **kw):
    args = {"csim": False, "part": None, "clock_ns": None, "io": "io_parallel", **kw}
    return hls.hls_command(run, **args)


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_missing_export(run):
    shutil.rmtree(run / "export")
    with pytest.raises(UserError) as err:
        _hls(run)
    assert f"codesign export {run}" in _one_line(err)
    assert not (run / "hls").exists()


def test_missing_policy(run):
    design = ir.load_design(run)
    design.policy = None
    ir.save_design(design, run)
    with pytest.raises(UserError) as err:
        _hls(run)
    assert f"codesign calibrate {run}" in _one_line(err)
    assert not (run / "hls").exists()


def test_unknown_part(run):
    calibrate_run(run, "margin", thresholds=[4])
    with pytest.raises(UserError) as err:
        _hls(run, part="xc9z999")
    assert "unknown FPGA part 'xc9z999'" in _one_line(err)


def test_unknown_io_type(run):
    with pytest.raises(UserError) as err:
        _hls(run, io="io_serial")
    assert "io_parallel" in _one_line(err)


def test_operator_hls4ml_cannot_convert(run):
    calibrate_run(run, "margin", thresholds=[4])
    path = run / "export" / "stage_0.onnx"
    model = onnx.load(str(path))
    logits = model.graph.output[-1]
    old = logits.name
    for node in model.graph.node:  # route the logits through an operator hls4ml lacks
        node.output[:] = [f"{old}_pre" if o == old else o for o in node.output]
    model.graph.node.append(helper.make_node("Erf", [f"{old}_pre"], [old], name="Erf_0"))
    onnx.save(model, str(path))
    with pytest.raises(UserError) as err:
        _hls(run)
    text = _one_line(err)
    assert "stage 0" in text and "Erf" in text
    assert not (run / "hls").exists()
