"""codesign.rtl.synth_run: yosys per stage and top vs hw_models (synth.json)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stage_ir.errors import UserError
from codesign.rtl.synth_run import _modules_from_stat, _expand, instances_of, stage_of_instance, synth_run

from tests.conftest import benchmark

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
    from codesign.frontend.calibrate_run import calibrate_run
    from codesign.rtl import generate_rtl

    run = tmp_path_factory.mktemp("synth") / "run"
    shutil.copytree(mlp_run, run)
    calibrate_run(run, "max_softmax", accuracy_delta=1.0)
    generate_rtl(run)
    return run


@pytest.fixture(scope="module")
def folded_rtl(small_rtl, tmp_path_factory) -> Path:
    """The same network folded to 512 | 2048 cycles per stage (benchmarks/model_validation.py's
    variant helper): other PE/SIMD, so DSPs, MVU logic and width converters differ."""
    mv = benchmark("model_validation")
    return mv.make_variant(small_rtl, tmp_path_factory.mktemp("synth_folded"), "mlp_512_2048", [512, 2048], [])


@pytest.fixture(scope="module")
def synthesised(small_rtl, folded_rtl) -> dict[Path, dict]:
    """synth_run of both designs, once (yosys: about 25 s each)."""
    return {run: synth_run(run) for run in (small_rtl, folded_rtl)}


@pytest.mark.needs("yosys")
def test_synth_run(synthesised):
    folds = set()
    for run, r in synthesised.items():
        data = json.loads((run / "synth.json").read_text())
        assert data["top"]["lut"] == r["top"]["lut"]
        assert len(data["stages"]) == 2
        for st in data["stages"]:
            assert set(("lut", "ff", "dsp", "bram", "carry")) <= set(st)
            assert set(st["model"]) == {"lut", "ff", "dsp", "bram"}
            assert set(st["error"]) == {"lut", "ff", "dsp", "bram"}
            assert st["lut"] > 0 and st["ff"] > 0
            # DSP and BRAM are counting rules (one DSP48E1 per product, RAMB18 by shape), not fits
            assert (st["model"]["dsp"], st["model"]["bram"]) == (st["dsp"], st["bram"]), (run.name, st)
        # every instance is attributed to a stage; the top adds only its own glue
        assert all(i["stage"] is not None for i in data["instances"])
        for res in ("lut", "ff", "dsp", "carry"):
            assert data["top"][res] == sum(s[res] for s in data["stages"]) + data["top"]["glue"][res]
        assert data["top"]["module"].endswith("_ee")
        assert (data["top"]["model"]["dsp"], data["top"]["model"]["bram"]) == (data["top"]["dsp"], data["top"]["bram"])
        folds.add(tuple(st["dsp"] for st in data["stages"]))
    assert len(folds) == 2  # two different designs, not one twice


@pytest.mark.needs("yosys")
def test_refit_and_cross_validation_on_two_designs(synthesised):
    """The refit lowers the block error on its own data and keeps DSP/BRAM exact per block; leave one
    design out fits on one design and predicts the other."""
    from hw_models.refit import _stage_totals, cross_validate, load_samples, refit

    samples = load_samples(list(synthesised))
    assert len(samples) == 2
    fit = refit(samples)["report"]
    for res in ("lut", "ff"):
        assert fit["block_error_after"][res]["mean_abs"] <= fit["block_error_before"][res]["mean_abs"] + 1e-9
    for row in fit["rows"]:
        assert (row["model_dsp"], row["model_bram"]) == (row["dsp"], row["bram"]), row["block"]
    cv = cross_validate(samples)
    assert cv["method"] == "leave one design out" and len(cv["stages"]) == 4
    for held_out in (0, 1):
        # the held-out design's stages are predicted with coefficients fitted to the other one only
        other = refit([samples[1 - held_out]])["coefficients"]
        expected = _stage_totals(samples[held_out][0], other)
        rows = [r for r in cv["stages"] if r["design"] == held_out]
        assert [(r["model_lut"], r["model_ff"]) for r in rows] == [(e["lut"], e["ff"]) for e in expected]
        assert [r["lut"] for r in rows] == [st["lut"] for st in samples[held_out][1]["stages"]]
    assert cv["summary"]["lut"]["worst_abs"] < 0.15 and cv["summary"]["ff"]["worst_abs"] < 0.15
