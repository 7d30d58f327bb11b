"""Export: torch == QONNX == integer reference, zero mismatches; determinism; refusal of non-conforming models."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from codesign.frontend.config import parse_config
from stage_ir.errors import UserError
from codesign.frontend.export import export, pow2_frac, qonnx_outputs
from codesign.design.ir import load_design
from codesign.design.reference import run_design
from codesign.frontend.run import load_trained
from codesign.frontend.train import train
from tests.conftest import example


def _check_bit_exact(run):
    report = json.loads((run / "export" / "verify.json").read_text())
    assert report["mismatches"] == 0 and report["qonnx_max_abs_diff"] == 0.0
    design = load_design(run)
    cfg, model, ds = load_trained(run)
    ref = run_design(design, ds.test.x)
    with torch.no_grad():
        outs = model(torch.from_numpy(ds.to_float(ds.test.x)))
    for k, (r, t) in enumerate(zip(ref, outs)):
        t_int = t.numpy().astype(np.float64) * 2.0 ** design.stages[k].logits.frac
        assert np.array_equal(r, t_int), f"exit {k}"
    # QONNX of stage 0 on the whole test split, independently of export's own check
    q = qonnx_outputs(run / "export" / "stage_0.onnx", ds.to_float(ds.test.x))
    assert np.array_equal(q[-1].astype(np.float64) * 2.0 ** design.stages[0].logits.frac, ref[0])
    return design


def test_mlp_bit_exact(mlp_run):
    design = _check_bit_exact(mlp_run)
    assert design.num_exits == 2 and design.stages[0].layers[0].kind == "flatten"


def test_cnn_bit_exact(cnn_run):
    design = _check_bit_exact(cnn_run)
    kinds = [layer.kind for layer in design.layers()]
    assert "conv2d" in kinds and "maxpool2d" in kinds


def test_stage_files_do_not_depend_on_the_checkout(cnn_run):
    """torch writes each op's Python stack (absolute source paths) and the dotted paths of the modules
    that traced it into the ONNX it exports; the export strips them, so two checkouts of the same code,
    or the same code after a module moved, write the same files (and HLS stamps)."""
    import onnx

    for path in sorted((cnn_run / "export").glob("stage_*.onnx")):
        keys = {p.key for node in onnx.load(str(path)).graph.node for p in node.metadata_props}
        assert not {k for k in keys if k.startswith("pkg.torch.onnx.") or k == "namespace"}, (path.name, keys)
        assert str(Path(__file__).resolve().parents[1]).encode() not in path.read_bytes(), path.name
        assert b"codesign." not in path.read_bytes(), path.name


def test_three_exits(mlp3_run):
    design = _check_bit_exact(mlp3_run)
    assert design.num_exits == 3


def test_same_seed_identical_design(tmp_path):
    data = example("digits_cnn", train__epochs=2)
    cfg = parse_config(data)
    for name in ("a", "b"):
        train(cfg, tmp_path / name, quiet=True)
        export(tmp_path / name)
    assert (tmp_path / "a" / "design.json").read_bytes() == (tmp_path / "b" / "design.json").read_bytes()
    for npy in sorted((tmp_path / "a" / "export" / "weights").iterdir()):
        assert npy.read_bytes() == (tmp_path / "b" / "export" / "weights" / npy.name).read_bytes()
    for onnx_file in ("stage_0.onnx", "stage_1.onnx"):
        assert (tmp_path / "a" / "export" / onnx_file).read_bytes() == (tmp_path / "b" / "export" / onnx_file).read_bytes()


def test_non_power_of_two_scale_refused():
    assert pow2_frac(0.125, "x") == 3
    with pytest.raises(UserError, match="not a power of two"):
        pow2_frac(0.1, "layer s0_l1 weights")


def test_export_before_train(tmp_path):
    with pytest.raises(UserError, match="codesign train"):
        export(tmp_path)


def test_batchnorm_folded_before_export(tmp_path):
    """A batchnorm after a conv/linear is folded into it at the end of training; export stays bit-exact."""
    data = example("digits_cnn", train__epochs=4)
    backbone = data["model"]["backbone"]
    backbone.insert(1, {"type": "batchnorm"})  # conv -> bn -> relu
    backbone.insert(5, {"type": "batchnorm"})
    data["model"]["exits"][0]["after"] = 3  # still after the first maxpool
    result = train(parse_config(data), tmp_path / "run", quiet=True)
    assert result["batchnorm_folded"] and result["exits"][-1]["test_accuracy"] > 0.5
    report = export(tmp_path / "run")
    assert report["mismatches"] == 0 and report["qonnx_max_abs_diff"] == 0.0
    design = load_design(tmp_path / "run")
    assert [layer.kind for layer in design.stages[0].layers] == ["conv2d", "maxpool2d"]  # no trace of the batchnorm
    _, model, _ = load_trained(tmp_path / "run")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_batchnorm_must_follow_compute():
    data = example("digits_mlp")
    data["model"]["backbone"].insert(1, {"type": "batchnorm"})  # after flatten
    data["model"]["exits"][0]["after"] = 3
    with pytest.raises(UserError, match="batchnorm must directly follow"):
        from codesign.frontend.model import plan_network

        plan_network(parse_config(data), (1, 8, 8), 10)
