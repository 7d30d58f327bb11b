"""The `codesign` command line (click).

click gives subcommands, --help on each and exit status 2 for usage errors;
`main` turns every UserError into one line on stderr and exit status 2.
Heavy imports (torch, brevitas, hls4ml) happen inside the commands so that
`codesign --help` and the torch-free steps start fast.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from stage_ir.errors import StepFailed, UserError
from stage_ir.policies import DEFAULT as DEFAULT_POLICY, POLICIES

RUN = click.argument("run", type=click.Path(path_type=Path))


def _add_device_files(ctx: click.Context, param: click.Parameter, paths: tuple[Path, ...]) -> tuple[Path, ...]:
    from codesign.frontend.yamlio import read_yaml
    from hw_models import add_devices
    from hw_models.devices import DEVICE_FILE_FIX

    for path in paths:
        if not path.is_file():
            raise UserError(f"device file {path} not found; give a YAML file in the format of hw_models/devices.yaml")
        add_devices(read_yaml(path, "device file", DEVICE_FILE_FIX), str(path))
    return paths


DEVICE_FILE = click.option("--device-file", type=click.Path(path_type=Path), multiple=True, is_eager=True,
                           expose_value=False, callback=_add_device_files,
                           help="YAML file adding parts (format of hw_models/devices.yaml)")


def _check_out(out: Path, force: bool) -> None:
    """An existing output folder is replaced only with --force, and only if it is a run folder."""
    if not out.exists():
        return
    if not force:
        raise UserError(f"output folder {out} exists; pass --force to replace it or choose another --out")
    if not (out.is_dir() and (not any(out.iterdir()) or (out / "config.yaml").is_file())):
        raise UserError(f"{out} is not a codesign run folder; refusing to replace it even with --force")


def _part_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An explicitly given part is never blank (a blank one would silently mean the default)."""
    if value is not None and not value.strip():
        raise click.BadParameter("give a part name, e.g. xc7z020, or leave the option out for the design's device")
    return value.strip() if value is not None else None


BURST_LENGTH = click.option("--burst-length", type=click.FloatRange(min=1.0), default=1.0,
                            help="mean burst length of exit decisions (1 = i.i.d., >= 1)")
SAMPLES = click.IntRange(min=1)

DEBUG_ENV = "CODESIGN_DEBUG"


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        os.environ[DEBUG_ENV] = "1"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="codesign")
@click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
              help=f"show the Python traceback of an internal error (or set {DEBUG_ENV}=1)")
def cli() -> None:
    """Quantised early-exit networks on FPGAs: train, calibrate, export, HLS, RTL, simulate, estimate."""


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="run folder to create")
@click.option("--force", is_flag=True, help="replace an existing run folder")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train(config: Path, out: Path, force: bool, quiet: bool) -> None:
    """Train the early-exit network of CONFIG into a new run folder."""
    from codesign.frontend.config import load_config

    cfg = load_config(config)
    _check_out(out, force)
    from codesign.commands.steps import run_step
    from codesign.frontend.train import check_inputs

    check_inputs(cfg)

    # --force: the old run is replaced only once the new one is complete
    result = run_step("train", out, {"_config": cfg, "_quiet": quiet}, replace_all=force).result
    accs = ", ".join(f"exit {e['index']}: {e['test_accuracy']:.4f}" for e in result["exits"])
    click.echo(f"trained {cfg.name} ({result['mode']}, {result['seconds']} s); test accuracy {accs}; -> {out}")


@cli.command()
@RUN
def export(run: Path) -> None:
    """Export each stage to QONNX, write design.json, prove torch == QONNX == integer reference."""
    from codesign.commands.steps import run_step

    report = run_step("export", run).result
    click.echo(f"exported {len(report['stages'])} stages to {run / 'export'}; {report['samples']} test samples: "
               f"{report['mismatches']} mismatches, QONNX max abs diff {report['qonnx_max_abs_diff']}; "
               f"-> {run / 'design.json'}")


def _floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{what} must be comma-separated numbers, e.g. 0.6,0.2; got {text!r}") from None


POLICY_CHOICE = click.Choice(list(POLICIES))


@cli.command()
@RUN
@click.option("--policy", type=POLICY_CHOICE, default=None, help="exit policy (default: the config's policy.kind)")
@click.option("--accuracy-delta", type=float, help="target: overall accuracy within this many pp of the final exit")
@click.option("--exit-rates", help="target: fraction of samples leaving at each early exit, e.g. 0.6 or 0.5,0.2")
@click.option("--budget", type=float, help="target: mean MACs per sample; maximise accuracy within it")
@click.option("--thresholds", help="no search: these integer thresholds, one per early exit")
def calibrate(run: Path, policy: str | None, accuracy_delta: float | None, exit_rates: str | None,
              budget: float | None, thresholds: str | None) -> None:
    """Pick per-exit integer thresholds on the validation split; write policy.json (and update design.json)."""
    from stage_ir import EXPORTED_FILE
    from codesign.commands.steps import run_step

    manual = None
    if thresholds is not None:
        try:
            manual = [int(v) for v in thresholds.split(",")]
        except ValueError:
            raise UserError(f"--thresholds must be comma-separated integers; got {thresholds!r}") from None
    if accuracy_delta is not None and not -100 <= accuracy_delta <= 100:
        raise UserError(f"--accuracy-delta must be in [-100, 100] percentage points; got {accuracy_delta}")
    result = run_step("calibrate", run, {"policy": policy, "accuracy_delta": accuracy_delta, "budget": budget,
                                         "exit_rates": _floats(exit_rates, "--exit-rates"), "thresholds": manual}).result
    v = result["validation"]
    fr = ", ".join(f"{e['exit_fraction']:.3f}" for e in v["exits"])
    click.echo(f"{result['kind']} thresholds {result['thresholds']} (float {[round(t, 4) for t in result['float_thresholds']]}); "
               f"validation: accuracy {v['overall_accuracy']:.4f} (final exit {v['final_accuracy']:.4f}), "
               f"exit fractions [{fr}], MACs {v['mac_fraction']:.3f} of no-exit; -> {run / 'policy.json'}")
    if (run / EXPORTED_FILE).is_file():
        click.echo(f"-> {run / 'design.json'}: every exit, these thresholds, no DSE choice; rerun `codesign dse {run}` "
                   "to build the DSE's design")


@cli.command()
@RUN
def evaluate(run: Path) -> None:
    """Evaluate the calibrated network on the test split; write eval.json and eval.png."""
    from codesign.commands.steps import run_step

    r = run_step("evaluate", run).result
    for e in r["exits"]:
        acc = "-" if e["accuracy_of_exited"] is None else f"{e['accuracy_of_exited']:.4f}"
        click.echo(f"exit {e['index']}: fraction {e['exit_fraction']:.3f}, accuracy alone {e['accuracy_alone']:.4f}, "
                   f"accuracy of exited {acc}")
    click.echo(f"overall accuracy {r['overall_accuracy']:.4f} (final exit only {r['final_accuracy']:.4f}), "
               f"MACs {r['mac_fraction']:.3f} of no-exit; -> {run / 'eval.json'}, {run / 'eval.png'}")


@cli.command()
@RUN
@click.option("--mode", type=click.Choice(["subnet", "anytime", "budget"]), required=True)
@click.option("--exit", "exit_index", type=int, default=0, help="subnet: the exit to truncate at")
@click.option("--budget", type=float, help="budget: mean MACs per sample")
@click.option("--policy", type=POLICY_CHOICE, default=DEFAULT_POLICY, help="budget: exit policy")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test")
@click.option("--json", "as_json", is_flag=True, help="print the full JSON result")
def infer(run: Path, mode: str, exit_index: int, budget: float | None, policy: str, split: str, as_json: bool) -> None:
    """Inference modes: subnet (truncate at an exit), anytime (every exit's answer), budget (adaptive)."""
    import json

    from codesign.frontend import inference
    if mode == "subnet":
        r = inference.subnet(run, exit_index, split)
        line = f"subnet at exit {exit_index}: accuracy {r['accuracy']:.4f}, {r['macs']} MACs ({r['mac_fraction']:.3f} of no-exit)"
    elif mode == "anytime":
        r = inference.anytime(run, split)
        line = "anytime: " + ", ".join(f"exit {e['index']} accuracy {e['accuracy']:.4f} at {e['macs']} MACs" for e in r["exits"])
    else:
        if budget is None:
            raise UserError("--mode budget needs --budget MACS (mean MACs per sample)")
        r = inference.budgeted(run, budget, policy, split)
        line = (f"budget {budget:g} MACs: thresholds {r['thresholds']}, accuracy {r['overall_accuracy']:.4f}, "
                f"mean {r['mean_macs']:.1f} MACs, exit fractions {[round(f, 3) for f in r['exit_fractions']]}")
    click.echo(json.dumps(r, indent=2) if as_json else line)


@cli.command()
@RUN
@click.option("--device", "devices", default=None, help="comma-separated parts (default: the design's device)")
@DEVICE_FILE
@click.option("--backend", type=click.Choice(["rtl", "hls"]), default="rtl")
@BURST_LENGTH
def estimate(run: Path, devices: str | None, backend: str, burst_length: float) -> None:
    """Analytical resources, latency and throughput per layer, stage and device; estimate.json/.md/.png."""
    from codesign.commands.estimate_run import parse_devices
    from codesign.design.ir import load_design
    from codesign.commands.steps import device_option, run_step

    parts = parse_devices(devices) if devices is not None else [load_design(run).device]
    r = run_step("estimate", run, {"devices": [device_option(d) for d in parts], "backend": backend,
                                   "burst_length": burst_length}).result
    for name, d in r["devices"].items():
        util = ", ".join(f"{k.upper()} {100 * v:.1f}%" for k, v in d["utilization"].items() if v is not None)
        click.echo(f"{name}: {d['lut']:.0f} LUT, {d['ff']:.0f} FF, {d['dsp']:.0f} DSP, {d['bram']:g} BRAM18 ({util}); "
                   f"{d['throughput_samples_per_cycle']:.4g} samples/cycle = {d['throughput_samples_per_second']:.4g}/s")
    click.echo(f"-> {run / 'estimate.json'}, {run / 'estimate.md'}, {run / 'estimate.png'}")


@cli.command()
@RUN
@click.option("--device", default=None, callback=_part_name, help="target part (default: the design's device)")
@DEVICE_FILE
@click.option("--budget", type=float, default=0.7, show_default=True, help="fraction of each device resource to use")
@click.option("--objective", type=click.Choice(["throughput", "resources"]), default="throughput")
@click.option("--min-accuracy", type=float, default=None, help="accuracy floor (default: the calibrated accuracy)")
@click.option("--throughput-target", type=float, default=None, help="objective resources: samples/cycle to reach")
@BURST_LENGTH
def dse(run: Path, device: str | None, budget: float, objective: str, min_accuracy: float | None,
        throughput_target: float | None, burst_length: float) -> None:
    """Explore folding, exits, thresholds and buffer depths for a device; dse.json, dse.png, design.json = the choice."""
    from codesign.design.ir import load_design
    from codesign.commands.steps import device_option, dse_params, run_step

    if not 0 < budget <= 1:
        raise UserError(f"--budget must be in (0, 1] (a fraction of each device resource); got {budget}")
    part = device_option(device if device is not None else load_design(run).device)
    r = run_step("dse", run, dse_params(part, budget, objective, min_accuracy, throughput_target, burst_length)).result
    c, b = r["chosen"], r["baseline"]
    click.echo(f"{r['device']}: chosen {c['throughput_samples_per_cycle']:.4g} samples/cycle with {c['lut']:.0f} LUT, "
               f"{c['dsp']:.0f} DSP (exits kept {c['exits_kept']}, thresholds {c['thresholds']}, buffers "
               f"{c['buffer_depths']}); no-exit baseline {b['throughput_samples_per_cycle']:.4g}; predicted gain "
               f"{r['predicted_gain']:.2f}x; {r['points_evaluated']} points at {r['points_per_second']:.3g}/s")
    dropped = f", exits {c['exits_dropped']} dropped (not generated)" if c["exits_dropped"] else ""
    click.echo(f"-> {run / 'dse.json'}, {run / 'dse.png'}, {run / 'design.json'} = the chosen design "
               f"({r['design']['stages']} stage{'s' if r['design']['stages'] != 1 else ''}{dropped})")


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="run folder (reused: up-to-date steps are skipped)")
@click.option("--device", default=None, help="target part for dse/estimate (default: the config's hardware.device)")
@click.option("--steps", default=None, help="comma-separated steps or a range like train..export (default: all)")
@click.option("--force", is_flag=True, help="redo every selected step")
def flow(config: Path, out: Path, device: str | None, steps: str | None, force: bool) -> None:
    """Run every step from CONFIG to a report, skipping steps whose outputs are up to date."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from codesign.commands import flow as flow_mod
    from codesign.commands.summary import headline

    selected = flow_mod.select_steps(steps)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]flow[/] {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(selected[0].name, total=len(selected))

        def on_step(res: flow_mod.StepResult) -> None:
            mark = {"ran": "done", "skipped": "skipped", "unavailable": "not run"}[res.status]
            secs = f" ({res.seconds:.1f} s)" if res.status == "ran" else ""
            progress.console.print(f"  {res.name:<10} {mark}{secs}: {res.detail}")
            progress.advance(task)
            names = [s.name for s in selected]
            if res.name in names and names.index(res.name) + 1 < len(names):
                progress.update(task, description=names[names.index(res.name) + 1])

        results = flow_mod.run_flow(config, out, steps, force, device, on_step)
    if all(r.status != "ran" for r in results):
        click.echo("nothing to do: every step is up to date (use --force to redo)")
    click.echo(headline(out))


@cli.command()
@RUN
@click.option("--csim", is_flag=True, help="compile with g++ and run the test split against the integer reference")
@click.option("--part", default=None, callback=_part_name,
              help="FPGA part for the Vitis projects (default: the design's device)")
@click.option("--clock", "clock_ns", type=float, default=None, help="clock period in ns (default: the design's)")
@click.option("--io", type=click.Choice(["parallel", "stream"]), default="parallel", help="hls4ml io type")
def hls(run: Path, csim: bool, part: str | None, clock_ns: float | None, io: str) -> None:
    """Generate Vitis HLS projects (hls4ml per stage + threshold unit, buffers, merge) into RUN/hls/."""
    from codesign.commands.steps import run_step

    r = run_step("hls", run, {"csim": csim, "part": part, "clock_ns": clock_ns, "io": f"io_{io}"}).result
    line = f"wrote {run / 'hls'} ({len(r['stages'])} stages, top {r['top']}, {r['part']} @ {r['clock_ns']} ns)"
    if csim:
        c = r["csim"]
        line += f"; C simulation: {c['samples']} samples, {c['mismatches']} mismatches -> {run / 'hls' / 'csim.json'}"
    click.echo(line)


@cli.command()
@RUN
@click.option("--verify", is_flag=True, help="simulate the test split in Verilator against the integer reference")
@click.option("--samples", type=SAMPLES, default=None, help="verify only the first N test samples")
def rtl(run: Path, verify: bool, samples: int | None) -> None:
    """Generate synthesisable Verilog for the whole early-exit design into RUN/rtl/."""
    from codesign.commands.steps import run_step

    r = run_step("rtl", run, {"verify": verify, "samples": samples}).result
    line = f"wrote {run / 'rtl'} (top {r['top']}, {len(r['sources'])} sources, {r['rom_files']} ROM files)"
    if verify:
        v = r["verify"]
        line += (f"; Verilator: {v['samples']} samples, {v['mismatches']} mismatches, "
                 f"{v['cycles_per_sample']:.1f} cycles/sample -> {run / 'rtl' / 'verify.json'}")
    click.echo(line)


@cli.command()
@RUN
@click.option("--traffic", default="data", show_default=True,
              help="data | iid:p0[,p1..] | markov:p0[,p1..],L | pattern:e0,e1,.. | trace:FILE")
@click.option("--samples", type=SAMPLES, default=None,
              help="samples to stream (default: the test split size; at most what fits in memory)")
@click.option("--backpressure", type=float, default=0.0, help="probability the consumer is not ready in a cycle")
@click.option("--gaps", type=float, default=0.0, help="probability the producer has no beat in a cycle")
@click.option("--seed", type=int, default=0)
@click.option("--sweep", default=None, help="several specs: iid:0.1..0.9[/N], markov:0.5,1..64[/N] or a;b;c")
@click.option("--fst", is_flag=True, help="also write an FST waveform RUN/sim/<name>.fst (keep --samples small)")
def sim(run: Path, traffic: str, samples: int | None, backpressure: float, gaps: float, seed: int,
        sweep: str | None, fst: bool) -> None:
    """Cycle-accurate throughput of RUN/rtl in Verilator under an exit-rate distribution; RUN/sim/<name>.json."""
    from codesign.commands.steps import sim_step

    if sweep and fst:
        raise UserError("--fst writes one simulation's waveform; leave it out with --sweep")
    step, params = sim_step(run, traffic, sweep, fst)
    r = execute_ad_hoc(run, step, dict(params, samples=samples, backpressure=backpressure, gaps=gaps, seed=seed))
    if sweep:
        for p in r["points"]:
            click.echo(f"{p['traffic']}: measured {p['throughput_samples_per_cycle']:.5g}, predicted "
                       f"{p['predicted_throughput_samples_per_cycle']:.5g} samples/cycle ({100 * p['model_error']:+.1f} %)")
        click.echo(f"mean |error| {100 * r['mean_abs_model_error']:.2f} %, worst {100 * r['max_abs_model_error']:.2f} %; "
                   f"-> {run / 'sim' / 'sweep.json'}, {run / 'sim' / 'sweep.png'}")
        return
    sb = r["scoreboard"]
    click.echo(f"{r['samples']} samples in {r['cycles']} cycles: measured {r['throughput_samples_per_cycle']:.5g} "
               f"samples/cycle ({r['throughput_samples_per_second']:.4g}/s), predicted "
               f"{r['predicted_throughput_samples_per_cycle']:.5g}; scoreboard lost {sb['lost']}, duplicated "
               f"{sb['duplicated']}, altered {sb['altered']}")
    if r["waveform"]:
        click.echo(f"waveform -> {run / r['waveform']}")


@cli.command()
@RUN
@click.option("--family", type=click.Choice(["xc7", "xcup"]), default="xc7", help="yosys synth_xilinx family")
def synth(run: Path, family: str) -> None:
    """yosys synth_xilinx of RUN/rtl per stage and for the top, beside the model's figures; RUN/synth.json."""
    from codesign.commands.steps import run_step

    outcome = run_step("synth", run, {"family": family})
    if outcome.status == "unavailable":
        raise UserError(outcome.detail)
    r = outcome.result
    for s in r["stages"]:
        m = s["model"]
        click.echo(f"stage {s.get('index', r['stages'].index(s))}: {s['lut']} LUT / {s['ff']} FF / {s['dsp']} DSP / "
                   f"{s['bram']} BRAM36 (model {m['lut']:.0f} / {m['ff']:.0f} / {m['dsp']:.0f} / {m['bram']:g})")
    t = r["top"]
    click.echo(f"top {t['module']}: {t['lut']} LUT, {t['ff']} FF, {t['dsp']} DSP, {t['bram']} BRAM36; -> {run / 'synth.json'}")


@cli.command()
@RUN
def report(run: Path) -> None:
    """Write RUN/report.html (self-contained, plots embedded) and RUN/report.md from the run's artifacts."""
    from codesign.commands.steps import run_step

    html, md = (run / p.name for p in run_step("report", run).result)
    click.echo(f"-> {html}, {md}")


@cli.command()
@RUN
def summary(run: Path) -> None:
    """A short summary of a run: accuracy per exit, exit fractions, artifacts."""
    from codesign.commands.summary import summarise

    click.echo(summarise(run))


@cli.command()
@click.argument("sweep_yaml", metavar="SWEEP.yaml", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="folder for results.csv/json, pareto.png (and the point folders unless shared_dir is set)")
@click.option("--address", default=None, help="join this Ray cluster (HOST:PORT from `ray start --head`, or auto); "
                                               "default: start a local one on this machine")
@click.option("--max-parallel", type=int, default=None, help="at most N points in flight (default: as resources allow)")
def sweep(sweep_yaml: Path, out: Path, address: str | None, max_parallel: int | None) -> None:
    """Run many design points (config axes x flow steps) as Ray tasks; a rerun skips finished points."""
    from codesign.sweeps.sweep import sweep_command

    click.echo(sweep_command(sweep_yaml, out, address, max_parallel)["message"])


def execute_ad_hoc(run: Path, step, params: dict):
    """A one-off result nothing else depends on (a traffic simulation): locked and atomic, no stamp."""
    from codesign.store.runfolder import execute
    from codesign.commands.steps import BY_NAME

    return execute(run, step, params, force=True, record=False, registry=BY_NAME).result


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like an exception: child processes are killed, scratch folders removed, and the
    run folder keeps its last complete results (codesign.store.runfolder)."""
    click.echo("error: terminated (SIGTERM); the run folder keeps its last complete results, rerun the "
               "command to finish", err=True)
    raise SystemExit(128 + signum)


def main() -> None:
    import signal
    import warnings

    signal.signal(signal.SIGTERM, _terminate)

    # library chatter (optional kernels, deprecations) is not the user's problem
    for noisy in ("brevitas", "torch", "qonnx", "hls4ml", "onnxscript"):
        warnings.filterwarnings("ignore", module=noisy)
    try:
        cli(standalone_mode=False)
    except UserError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except StepFailed as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as err:
        where = err.ctx.command_path if err.ctx else "codesign"
        click.echo(f"error: {err.format_message()} (see `{where} --help`)", err=True)
        sys.exit(2)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except SystemExit:
        raise
    except Exception as err:  # a defect of codesign, not of the user's input: one line unless debugging
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        first = str(err).splitlines()[0] if str(err) else ""
        click.echo(f"internal error: {type(err).__name__}: {first} (a codesign defect; rerun with "
                   f"`codesign --debug ...` or {DEBUG_ENV}=1 for the traceback and report it)", err=True)
        sys.exit(1)

if __name__ == "__main__":
    main()
