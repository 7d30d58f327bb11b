"""codesign.synth_run: yosys per stage and top vs hw_models (synth.json)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from codesign.errors import UserError
from codesign.synth_run import _modules_from_stat, _expand, instances_of, stage_of_instance, synth_run

HAVE_YOSYS = shutil.which("yosys") is not None


def test_stat_parsing_and_expansion():
    # yosys 0.23 `stat -json` with hierarchy: valid "modules", then a non-JSON "design" section
    text = ('{"creator": "Yosys", "modules": {"\\\\top": {"num_cells_by_type": {"$paramod$ab\\\\cs_mvu": 2, '
            '"LUT2": 3}}, "$paramod$ab\\\\cs_mvu": {"num_cells_by_type": {"LUT6": 5, "FDRE": 7, '
            '"$paramod$cd\\\\cs_rom": 1}}, "$paramod$cd\\\\cs_rom": {"num_cells_by_type": {"RAMB18E1": 1}}}, '
            '"design": { hierarchy\n   top 1\n }}')
    mods = _modules_from_stat(text)
    assert set(mods) == {"\\top", "$paramod$ab\\cs_mvu", "$paramod$cd\\cs_rom"}
    cells = _expand("\\top", mods, {})
    assert cells == {"LUT6": 10, "FDRE": 14, "RAMB18E1": 2, "LUT2": 3}


def test_instances_and_stage_attribution():
    v = ("module t(a);\n  \\$paramod$1\\cs_mvu  u_s0_l1_dense (\n    .a(a)\n  );\n"
         "  \\$paramod$2\\cs_fifo  u_s1_l0_dense_in_q (\n  );\n  cs_split u_stage0_split (\n  );\n"
         "  LUT2 #(.INIT(4'h1)) _1_ (\n  );\nendmodule\n")
    inst = instances_of(v)
    assert inst == {"u_s0_l1_dense": "$paramod$1\\cs_mvu", "u_s1_l0_dense_in_q": "$paramod$2\\cs_fifo",
                    "u_stage0_split": "cs_split"}
    layers = {"s0_l1_dense": 0, "s1_l0_dense": 1, "s1_l0": 0}
    assert stage_of_instance("u_s1_l0_dense_in_q", layers, 2) == 1  # longest layer name wins
    assert stage_of_instance("u_s0_l1_dense_cvt", layers, 2) == 0
    assert stage_of_instance("u_exit1_tu", layers, 2) == 1
    assert stage_of_instance("u_buffer0_count", layers, 2) == 0
    assert stage_of_instance("u_tagger", layers, 2) == 0
    assert stage_of_instance("u_merge", layers, 2) == 1
    assert stage_of_instance("u_unknown", layers, 2) is None


def test_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="codesign rtl"):
        if not HAVE_YOSYS:
            monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/yosys")
        synth_run(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="apt-get install yosys"):
        synth_run(tmp_path)


@pytest.fixture(scope="module")
def small_rtl(mlp_run, tmp_path_factory) -> Path:
    """The digits MLP, calibrated, fully folded (PE = SIMD = 1: the smallest design), RTL generated."""
    from codesign.calibrate_run import calibrate_run
    from codesign.rtl import generate_rtl

    run = tmp_path_factory.mktemp("synth") / "run"
    shutil.copytree(mlp_run, run)
    calibrate_run(run, "max_softmax", accuracy_delta=1.0)
    generate_rtl(run)
    return run


@pytest.mark.skipif(not HAVE_YOSYS, reason="yosys not installed")
def test_synth_run_small_design(small_rtl):
    r = synth_run(small_rtl)
    data = json.loads((small_rtl / "synth.json").read_text())
    assert data["top"]["lut"] == r["top"]["lut"]
    assert len(data["stages"]) == 2
    for st in data["stages"]:
        assert set(("lut", "ff", "dsp", "bram", "carry")) <= set(st)
        assert set(st["model"]) == {"lut", "ff", "dsp", "bram"}
        assert set(st["error"]) == {"lut", "ff", "dsp", "bram"}
        assert st["lut"] > 0 and st["ff"] > 0
    # every instance is attributed to a stage; the top adds only its own glue
    assert all(i["stage"] is not None for i in data["instances"])
    for res in ("lut", "ff", "dsp", "carry"):
        assert data["top"][res] == sum(s[res] for s in data["stages"]) + data["top"]["glue"][res]
    assert data["top"]["module"].endswith("_ee")


@pytest.mark.skipif(not HAVE_YOSYS, reason="yosys not installed")
def test_refit_and_cross_validation_on_a_real_synthesis(small_rtl):
    """The refit lowers the block error on its own data; leave-one-out runs with the refit per fold."""
    from hw_models.refit import cross_validate, load_samples, refit

    if not (small_rtl / "synth.json").is_file():
        synth_run(small_rtl)
    samples = load_samples([small_rtl, small_rtl])  # two folds of the same design: out-of-sample == in-sample
    fit = refit(samples)["report"]
    for res in ("lut", "ff"):
        assert fit["block_error_after"][res]["mean_abs"] <= fit["block_error_before"][res]["mean_abs"] + 1e-9
    cv = cross_validate(samples)
    assert cv["method"] == "leave one design out" and len(cv["stages"]) == 4
    assert cv["summary"]["lut"]["worst_abs"] < 0.15 and cv["summary"]["ff"]["worst_abs"] < 0.15
