"""Flow steps of the hardware back ends, registered into codesign.flow.

Each back end (HLS, RTL, simulation, synthesis, report) is imported only when
its step runs, so the flow's first steps do not pay for hls4ml or Verilator.
"""
from __future__ import annotations

import shutil

from codesign import flow
from codesign.flow import FlowContext, Step


def _do_report(ctx: FlowContext) -> str:
    from codesign.report import write_report

    paths = write_report(ctx.run)
    return f"-> {paths[0]}"


def _do_hls(ctx: FlowContext) -> str:
    from codesign.hls import hls_command

    c = hls_command(ctx.run, True, None, None, "io_parallel")["csim"]
    return f"C simulation {c['samples']} samples, {c['mismatches']} mismatches"


def _do_rtl(ctx: FlowContext) -> str:
    from codesign.rtl import rtl_command

    v = rtl_command(ctx.run, verify=True)["verify"]
    return f"Verilator {v['samples']} samples, {v['mismatches']} mismatches"


def measure_gain(run, ee: dict) -> float:
    """Simulate the no-exit baseline the DSE compared against; record the measured gain in sim/data.json."""
    import json

    from codesign.baseline import write_baseline
    from codesign.rtl import generate_rtl
    from codesign.sim_run import run_traffic

    dse = json.loads((run / "dse.json").read_text())
    folder = write_baseline(run, dse["baseline"]["folding"])
    generate_rtl(folder)
    bl = run_traffic(folder, "data", samples=ee["samples"])  # the same passes over the test split
    ee.update(measured_gain=ee["throughput_samples_per_cycle"] / bl["throughput_samples_per_cycle"],
              baseline_throughput_samples_per_cycle=bl["throughput_samples_per_cycle"],
              baseline_accuracy=bl["accuracy"], baseline_run=str(folder))
    (run / "sim" / "data.json").write_text(json.dumps(ee, indent=2) + "\n")
    return ee["measured_gain"]


SWEEP_RATES = (0.5, 0.7, 0.85, 0.95, 1.0)  # exit-0 rates of the flow's measured-vs-predicted sweep
# The model predicts steady state; on digits' 449 samples the fill and the drain of the last
# continuing sample through the later stages (~800 cycles) moved the measured figure by up to 10 %.
SIM_MIN_SAMPLES = 2000


def _do_sim(ctx: FlowContext) -> str:
    from codesign.ir import load_design
    from codesign.calibrate_run import run_dataset
    from codesign.sim_run import run_traffic, sweep

    # whole passes over the test split (dataset order kept), at least SIM_MIN_SAMPLES
    n_test = len(run_dataset(ctx.run).test.x)
    r = run_traffic(ctx.run, "data", samples=n_test * -(-SIM_MIN_SAMPLES // n_test))
    gain = measure_gain(ctx.run, r)
    others = ",0" * (load_design(ctx.run).num_exits - 2)
    sw = sweep(ctx.run, ";".join(f"iid:{p:g}{others}" for p in SWEEP_RATES),
               samples=r["samples"])
    return (f"measured {r['throughput_samples_per_cycle']:.4g} samples/cycle (gain {gain:.2f}x), predicted "
            f"{r['predicted_throughput_samples_per_cycle']:.4g}; scoreboard {r['scoreboard']}; sweep model error "
            f"mean {100 * sw['mean_abs_model_error']:.1f} %, worst {100 * sw['max_abs_model_error']:.1f} %")


def _do_synth(ctx: FlowContext) -> str:
    from codesign.synth_run import synth_run

    t = synth_run(ctx.run)["top"]
    return f"{t['lut']} LUT, {t['ff']} FF, {t['dsp']} DSP, {t['bram']} BRAM36 (yosys)"


def _report_inputs(ctx: FlowContext):
    names = ["train.json", "eval.json", "design.json", "dse.json", "estimate.json", "hls/csim.json",
             "rtl/verify.json", "sim/data.json", "synth.json"]
    return [ctx.run / n for n in names]


def _export_outputs(ctx: FlowContext):
    return [ctx.run / "design.json", ctx.run / "export" / "verify.json"]


def _no_yosys() -> str | None:
    return None if shutil.which("yosys") else "yosys not found; install it with `apt-get install yosys`"


def register_backends() -> None:
    flow.register(Step("hls", _export_outputs, ("hls/csim.json",), _do_hls), after="estimate")
    flow.register(Step("rtl", _export_outputs, ("rtl/verify.json",), _do_rtl), after="hls")
    flow.register(Step("sim", lambda ctx: [ctx.run / "rtl" / "verify.json", ctx.run / "dse.json"],
                       ("sim/data.json", "sim/sweep.json"),
                       _do_sim), after="rtl")
    flow.register(Step("synth", lambda ctx: [ctx.run / "rtl" / "verify.json"], ("synth.json",), _do_synth,
                       _no_yosys), after="sim")
    flow.register(Step("report", _report_inputs, ("report.html", "report.md"), _do_report))
