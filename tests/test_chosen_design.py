"""The hardware built is the design the DSE chose: exits it drops are not generated (issue 14).

The three-exit digits MLP, calibrated (max_softmax, 1 pp), on xc7z020: at budget 0.7 the DSE keeps
exits [0, 2] (exit 1 dropped); on a part too small for any early exit (TINY), none.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from codesign.design.compose import calibrated_policy, compose_design
from codesign.design.ir import load_design, load_exported_design, save_design
from hw_models.stages import decide
from tests.conftest import calibrated_copy
from tests.test_config import run_cli

HAVE_YOSYS = shutil.which("yosys") is not None
DROP_ONE = ("--device", "xc7z020", "--budget", "0.7")  # keeps exits [0, 2]
# a part whose 1,000 LUTs hold the no-exit network (920 LUT at its slowest folding) but no early exit
# (a threshold unit, a conditional buffer and a head: 1,481 LUT at the least); with no accuracy floor,
# since the final exit alone may be less accurate than the calibrated early-exit network. A budget
# on xc7z020 would depend on how the training came out on this machine.
TINY = "tiny: {family: xc7, lut: 1000, ff: 106400, dsp: 220, bram36: 140, uram: 0, clock_ns: 10.0}\n"


def drop_all(folder: Path) -> tuple[str, ...]:
    """dse options that keep exit [2] only."""
    (folder / "tiny.yaml").write_text(TINY)
    return ("--device-file", str(folder / "tiny.yaml"), "--device", "tiny", "--budget", "1.0", "--min-accuracy", "0")


def _cli(*args: str, cwd: Path) -> str:
    res = run_cli(*args, cwd=cwd)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dropped(mlp3_run, tmp_path_factory) -> Path:
    """dse dropped exit 1, then evaluate and estimate ran on the result."""
    run = calibrated_copy(mlp3_run, tmp_path_factory)
    cwd = run.parent
    _cli("dse", str(run), *DROP_ONE, cwd=cwd)
    _cli("evaluate", str(run), cwd=cwd)
    _cli("estimate", str(run), "--device", "xc7z020", cwd=cwd)
    return run


def test_design_json_is_the_reduced_design(dropped):
    design, exported = load_design(dropped), load_exported_design(dropped)
    chosen = json.loads((dropped / "dse.json").read_text())["chosen"]
    assert chosen["exits_kept"] == [0, 2] and chosen["exits_dropped"] == [1]
    assert [st.export_stages for st in design.stages] == [[0], [1, 2]]
    assert design.exits_kept == [0, 2] and design.exits_dropped == [1]
    s1, e1, e2 = design.stages[1], exported.stages[1], exported.stages[2]
    assert [l.name for l in s1.layers] == [l.name for l in e1.layers + e2.layers]
    assert [l.name for l in s1.head] == [l.name for l in e2.head] and s1.input == e1.input
    assert s1.macs == {"backbone": e1.macs["backbone"] + e2.macs["backbone"], "head": e2.macs["head"]}
    assert not {l.name for l in design.layers()} & {l.name for l in e1.head}
    # the policy: the kept exit's threshold and table only
    assert design.policy.thresholds == chosen["thresholds"] and len(chosen["thresholds"]) == 1
    assert design.policy.tables["num_exits"] == 2
    assert design.policy.tables["exits"][0] == calibrated_policy(dropped).tables["exits"][0]
    for name, fold in chosen["folding"].items():
        assert design.layer(name).folding.model_dump(include={"pe", "simd"}) == fold
    assert design.stages[0].buffer_depth == chosen["buffer_depths"][0]
    # the exported IR is still the whole network, unfolded and without a policy
    assert exported.num_exits == 3 and exported.policy is None
    assert all(l.folding.pe == l.folding.simd == 1 for l in exported.layers() if hasattr(l, "folding"))


def test_estimate_and_dse_describe_the_same_stages(dropped):
    chosen = json.loads((dropped / "dse.json").read_text())["chosen"]
    est = json.loads((dropped / "estimate.json").read_text())
    dev = est["devices"]["xc7z020"]
    assert len(est["stages"]) == 2 and [s["ii_cycles"] for s in est["stages"]] == chosen["ii_per_stage"]
    for r in ("lut", "ff", "dsp", "bram"):
        assert dev[r] == pytest.approx(chosen[r], rel=1e-6), r
    assert dev["throughput_samples_per_cycle"] == pytest.approx(chosen["throughput_samples_per_cycle"], rel=1e-6)
    assert est["exit_fractions_source"] == "test split (eval.json)"


def test_eval_json_is_the_built_designs(dropped):
    from codesign.frontend.calibrate_run import run_dataset
    from codesign.design.reference import design_view

    design = load_design(dropped)
    ev = json.loads((dropped / "eval.json").read_text())
    assert ev["design"] == "design.json" and ev["export_stages"] == [[0], [1, 2]] and ev["exits_dropped"] == [1]
    assert [e["export_exit"] for e in ev["exits"]] == [0, 2]
    assert [e["threshold"] for e in ev["exits"]] == [design.policy.thresholds[0], None]
    test = run_dataset(dropped).test
    _, view = design_view(design, test.x)
    assert ev["overall_accuracy"] == pytest.approx(float(np.mean(view.exit_class == test.y)))
    for k, e in enumerate(ev["exits"]):
        assert e["exit_fraction"] == pytest.approx(float(np.mean(view.exit_index == k)))
    # the report and the flow's summary say so
    _cli("report", str(dropped), cwd=dropped.parent)
    md = (dropped / "report.md").read_text()
    assert "exits kept [0, 2]" in md and "exits dropped [1]" in md and "This is the design `codesign dse` chose" in md
    assert "(exported exit 2)" in md and "evaluated another design" not in md
    from codesign.commands.summary import headline

    assert headline(dropped).splitlines()[0] == "built design: exits kept [0, 2], dropped [1] (design.json)"


def test_rtl_has_no_hardware_for_the_dropped_exit(dropped):
    out = _cli("rtl", str(dropped), "--verify", cwd=dropped.parent)
    assert "0 mismatches" in out
    verify = json.loads((dropped / "rtl" / "verify.json").read_text())
    assert verify["mismatches"] == 0 and verify["samples"] == 449 and len(verify["exits"]) == 2
    man = json.loads((dropped / "rtl" / "manifest.json").read_text())
    assert man["num_exits"] == 2 and [e["index"] for e in man["exits"]] == [0, 1]
    assert [p["name"] for p in man["ports"] if p["name"].startswith("threshold_")] == ["threshold_0"]
    top = (dropped / "rtl" / f"{man['top']}.v").read_text()
    assert top.count("cs_cond_buffer") == 1 and "u_buffer1" not in top
    assert top.count("u_exit0_tu") == 1 and top.count("u_exit1_tu") == 1  # exit 0 and the final classifier
    assert "s1_head" not in top  # the dropped exit's head
    assert {l["stage"] for l in man["layers"] if l["name"].startswith(("s1_", "s2_"))} == {1}


def test_hls_composes_the_merged_stage(dropped):
    before = _digests(dropped / "export")
    out = _cli("hls", str(dropped), "--csim", cwd=dropped.parent)
    assert "0 mismatches" in out
    csim = json.loads((dropped / "hls" / "csim.json").read_text())
    assert csim["mismatches"] == 0 and csim["samples"] == 449 and csim["export_stages"] == [[0], [1, 2]]
    assert (dropped / "hls" / "qonnx" / "stage_1.onnx").is_file()
    assert not (dropped / "hls" / "qonnx" / "stage_0.onnx").exists()  # a one-file stage reads export/ as it is
    assert sorted(p.name for p in (dropped / "hls").iterdir() if p.is_dir()) == ["qonnx", "stage_0", "stage_1", "top"]
    assert _digests(dropped / "export") == before


def test_rerunning_dse_starts_from_the_whole_network(dropped, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(dropped, run, ignore=shutil.ignore_patterns("rtl", "hls"))
    first = json.loads((dropped / "dse.json").read_text())
    _cli("dse", str(run), *drop_all(tmp_path), cwd=tmp_path)
    assert [st.export_stages for st in load_design(run).stages] == [[0, 1, 2]]
    _cli("dse", str(run), *DROP_ONE, cwd=tmp_path)  # from a one-stage design.json: only the export has exit 0 and 1
    again = json.loads((run / "dse.json").read_text())
    assert [st.export_stages for st in load_design(run).stages] == [[0], [1, 2]]
    assert again["points_evaluated"] == first["points_evaluated"]
    assert again["chosen"]["thresholds"] == first["chosen"]["thresholds"]
    assert (run / "design.json").read_text() == (dropped / "design.json").read_text()


def test_calibrate_after_dse_restores_every_exit(dropped, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(dropped, run, ignore=shutil.ignore_patterns("rtl", "hls"))
    out = _cli("calibrate", str(run), "--policy", "max_softmax", "--accuracy-delta", "0.5", cwd=tmp_path)
    assert f"rerun `codesign dse {run}`" in out
    design = load_design(run)
    pol = json.loads((run / "policy.json").read_text())
    assert [st.export_stages for st in design.stages] == [[0], [1], [2]]
    assert design.policy.thresholds == pol["thresholds"] and len(pol["thresholds"]) == 2
    assert all(l.folding.pe == l.folding.simd == 1 for l in design.layers() if hasattr(l, "folding"))
    # eval.json and dse.json described the DSE's design: the report leaves them out and says so
    _cli("report", str(run), cwd=tmp_path)
    md = (run / "report.md").read_text()
    assert "Left out as stale" in md and "`dse.json` (policy.json changed" in md and "`eval.json` (" in md
    _cli("evaluate", str(run), cwd=tmp_path)
    _cli("report", str(run), cwd=tmp_path)
    md = (run / "report.md").read_text()
    assert "`eval.json` (" not in md and "`dse.json` (policy.json changed" in md  # the DSE's choice: stale


def test_no_early_exit_kept(mlp3_run, tmp_path_factory):
    run = calibrated_copy(mlp3_run, tmp_path_factory)
    cwd = run.parent
    out = _cli("dse", str(run), *drop_all(cwd), cwd=cwd)
    assert "exits kept [2]" in out and "thresholds []" in out
    design = load_design(run)
    assert design.num_exits == 1 and design.policy is None and design.stages[0].buffer_depth is None
    assert design.stages[0].export_stages == [0, 1, 2] and design.stages[0].features is None
    assert design.stages[0].macs["backbone"] + design.stages[0].macs["head"] == design.macs_no_exit
    verify = _cli("rtl", str(run), "--verify", cwd=cwd)
    assert "449 samples, 0 mismatches" in verify
    man = json.loads((run / "rtl" / "manifest.json").read_text())
    assert not [p for p in man["ports"] if p["name"].startswith("threshold_")]
    assert "cs_cond_buffer.v" not in man["sources"]
    _cli("evaluate", str(run), cwd=cwd)
    ev = json.loads((run / "eval.json").read_text())
    assert len(ev["exits"]) == 1 and ev["exits"][0]["exit_fraction"] == 1.0 and ev["mac_fraction"] == 1.0
    assert ev["overall_accuracy"] == ev["final_accuracy"]
    _cli("estimate", str(run), "--device", "xc7z020", cwd=cwd)
    est = json.loads((run / "estimate.json").read_text())
    chosen = json.loads((run / "dse.json").read_text())["chosen"]
    assert len(est["stages"]) == 1
    for r in ("lut", "ff", "dsp", "bram"):
        assert est["devices"]["xc7z020"][r] == pytest.approx(chosen[r], rel=1e-6), r


def _unreduced(dropped: Path, folder: Path) -> Path:
    """The same network with every exit built: the chosen folding and buffer depth, the exit the DSE
    dropped at its cheapest (head fully folded, a one-sample buffer), as main built it before."""
    from codesign.rtl import generate_rtl

    shutil.copytree(dropped, folder, ignore=shutil.ignore_patterns("rtl", "hls", "synth.json"))
    chosen = json.loads((dropped / "dse.json").read_text())["chosen"]
    design = compose_design(load_exported_design(folder), calibrated_policy(folder))
    design = decide(design, chosen["folding"], [chosen["buffer_depths"][0], 1])
    design.device = "xc7z020"
    save_design(design, folder)
    generate_rtl(folder)
    return folder


@pytest.mark.skipif(not HAVE_YOSYS, reason="yosys not installed")
def test_yosys_counts_follow_the_dropped_exit(dropped, tmp_path):
    from codesign.rtl.synth_run import synth_run

    if not (dropped / "rtl" / "manifest.json").is_file():
        _cli("rtl", str(dropped), cwd=dropped.parent)
    reduced = synth_run(dropped)
    full = synth_run(_unreduced(dropped, tmp_path / "full"), write=False)
    assert reduced["top"]["lut"] < full["top"]["lut"] and reduced["top"]["dsp"] < full["top"]["dsp"]
    synth = json.loads((dropped / "synth.json").read_text())
    assert len(synth["stages"]) == 2
    for st in synth["stages"]:
        assert st["dsp"] == st["model"]["dsp"] and st["bram"] == st["model"]["bram"], st
