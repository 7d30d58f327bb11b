"""The `codesign` command line (click).

click gives subcommands, --help on each and exit status 2 for usage errors;
`main` turns every UserError into one line on stderr and exit status 2.
Heavy imports (torch, brevitas, hls4ml) happen inside the commands so that
`codesign --help` and the torch-free steps start fast.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from codesign.errors import StepFailed, UserError

RUN = click.argument("run", type=click.Path(path_type=Path))


def _add_device_files(ctx: click.Context, param: click.Parameter, paths: tuple[Path, ...]) -> tuple[Path, ...]:
    from hw_models import load_device_file

    for path in paths:
        if not path.is_file():
            raise UserError(f"device file {path} not found; give a YAML file in the format of hw_models/devices.yaml")
        load_device_file(path)
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="codesign")
def cli() -> None:
    """Quantised early-exit networks on FPGAs: train, calibrate, export, HLS, RTL, simulate, estimate."""


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="run folder to create")
@click.option("--force", is_flag=True, help="replace an existing run folder")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train(config: Path, out: Path, force: bool, quiet: bool) -> None:
    """Train the early-exit network of CONFIG into a new run folder."""
    from codesign.config import load_config

    cfg = load_config(config)
    _check_out(out, force)
    from codesign.train import train as run_training

    from codesign.scratch import replace_dir

    with replace_dir(out) as scratch:  # an old run is replaced only once the new one is complete
        result = run_training(cfg, scratch, quiet=quiet)
    accs = ", ".join(f"exit {e['index']}: {e['test_accuracy']:.4f}" for e in result["exits"])
    click.echo(f"trained {cfg.name} ({result['mode']}, {result['seconds']} s); test accuracy {accs}; -> {out}")


@cli.command()
@RUN
def export(run: Path) -> None:
    """Export each stage to QONNX, write design.json, prove torch == QONNX == integer reference."""
    from codesign.export import export as run_export

    report = run_export(run)
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


POLICY_CHOICE = click.Choice(["margin", "max_softmax", "entropy", "patience"])


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
    from codesign.calibrate_run import calibrate_run
    from codesign.config import load_config
    from codesign.run import require

    cfg = load_config(require(run, "config.yaml", "train"))
    manual = None
    if thresholds is not None:
        try:
            manual = [int(v) for v in thresholds.split(",")]
        except ValueError:
            raise UserError(f"--thresholds must be comma-separated integers; got {thresholds!r}") from None
    if accuracy_delta is not None and not -100 <= accuracy_delta <= 100:
        raise UserError(f"--accuracy-delta must be in [-100, 100] percentage points; got {accuracy_delta}")
    result = calibrate_run(run, policy or cfg.policy.kind, accuracy_delta, _floats(exit_rates, "--exit-rates"),
                           budget, manual)
    v = result["validation"]
    fr = ", ".join(f"{e['exit_fraction']:.3f}" for e in v["exits"])
    click.echo(f"{result['kind']} thresholds {result['thresholds']} (float {[round(t, 4) for t in result['float_thresholds']]}); "
               f"validation: accuracy {v['overall_accuracy']:.4f} (final exit {v['final_accuracy']:.4f}), "
               f"exit fractions [{fr}], MACs {v['mac_fraction']:.3f} of no-exit; -> {run / 'policy.json'}")


@cli.command()
@RUN
def evaluate(run: Path) -> None:
    """Evaluate the calibrated network on the test split; write eval.json and eval.png."""
    from codesign.evaluate import evaluate_run

    r = evaluate_run(run)
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
@click.option("--policy", type=POLICY_CHOICE, default="max_softmax", help="budget: exit policy")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test")
@click.option("--json", "as_json", is_flag=True, help="print the full JSON result")
def infer(run: Path, mode: str, exit_index: int, budget: float | None, policy: str, split: str, as_json: bool) -> None:
    """Inference modes: subnet (truncate at an exit), anytime (every exit's answer), budget (adaptive)."""
    import json

    from codesign import inference

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
@click.option("--burst-length", type=float, default=1.0, help="mean burst length of exit decisions (1 = i.i.d.)")
def estimate(run: Path, devices: str | None, backend: str, burst_length: float) -> None:
    """Analytical resources, latency and throughput per layer, stage and device; estimate.json/.md/.png."""
    from codesign.estimate_run import estimate_run, parse_devices
    from codesign.ir import load_design

    parts = parse_devices(devices) if devices else [load_design(run).device]
    r = estimate_run(run, parts, backend, burst_length)
    for name, d in r["devices"].items():
        util = ", ".join(f"{k.upper()} {100 * v:.1f}%" for k, v in d["utilization"].items() if v is not None)
        click.echo(f"{name}: {d['lut']:.0f} LUT, {d['ff']:.0f} FF, {d['dsp']:.0f} DSP, {d['bram']:g} BRAM18 ({util}); "
                   f"{d['throughput_samples_per_cycle']:.4g} samples/cycle = {d['throughput_samples_per_second']:.4g}/s")
    click.echo(f"-> {run / 'estimate.json'}, {run / 'estimate.md'}, {run / 'estimate.png'}")


@cli.command()
@RUN
@click.option("--device", default=None, help="target part (default: the design's device)")
@DEVICE_FILE
@click.option("--budget", type=float, default=0.7, show_default=True, help="fraction of each device resource to use")
@click.option("--objective", type=click.Choice(["throughput", "resources"]), default="throughput")
@click.option("--min-accuracy", type=float, default=None, help="accuracy floor (default: the calibrated accuracy)")
@click.option("--throughput-target", type=float, default=None, help="objective resources: samples/cycle to reach")
@click.option("--burst-length", type=float, default=1.0, help="mean burst length of exit decisions (1 = i.i.d.)")
def dse(run: Path, device: str | None, budget: float, objective: str, min_accuracy: float | None,
        throughput_target: float | None, burst_length: float) -> None:
    """Explore folding, exits, thresholds and buffer depths for a device; dse.json, dse.png, design.json updated."""
    from codesign.estimate_run import dse_run
    from codesign.ir import load_design

    if not 0 < budget <= 1:
        raise UserError(f"--budget must be in (0, 1] (a fraction of each device resource); got {budget}")
    r = dse_run(run, device or load_design(run).device, budget, objective, min_accuracy, throughput_target,
                burst_length)
    c, b = r["chosen"], r["baseline"]
    click.echo(f"{r['device']}: chosen {c['throughput_samples_per_cycle']:.4g} samples/cycle with {c['lut']:.0f} LUT, "
               f"{c['dsp']:.0f} DSP (exits kept {c['exits_kept']}, thresholds {c['thresholds']}, buffers "
               f"{c['buffer_depths']}); no-exit baseline {b['throughput_samples_per_cycle']:.4g}; predicted gain "
               f"{r['predicted_gain']:.2f}x; {r['points_evaluated']} points at {r['points_per_second']:.3g}/s")
    click.echo(f"-> {run / 'dse.json'}, {run / 'dse.png'}, folding written into {run / 'design.json'}")


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

    from codesign import flow as flow_mod
    from codesign.backends import register_backends
    from codesign.summary import headline

    register_backends()
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
@click.option("--part", default=None, help="FPGA part for the Vitis projects (default: the design's device)")
@click.option("--clock", "clock_ns", type=float, default=None, help="clock period in ns (default: the design's)")
@click.option("--io", type=click.Choice(["parallel", "stream"]), default="parallel", help="hls4ml io type")
def hls(run: Path, csim: bool, part: str | None, clock_ns: float | None, io: str) -> None:
    """Generate Vitis HLS projects (hls4ml per stage + threshold unit, buffers, merge) into RUN/hls/."""
    from codesign.hls import hls_command

    r = hls_command(run, csim, part, clock_ns, f"io_{io}")
    line = f"wrote {r['hls_dir']} ({len(r['stages'])} stages, top {r['top']}, {r['part']} @ {r['clock_ns']} ns)"
    if csim:
        c = r["csim"]
        line += f"; C simulation: {c['samples']} samples, {c['mismatches']} mismatches -> {r['hls_dir']}/csim.json"
    click.echo(line)


@cli.command()
@RUN
@click.option("--verify", is_flag=True, help="simulate the test split in Verilator against the integer reference")
@click.option("--samples", type=int, default=None, help="verify only the first N test samples")
def rtl(run: Path, verify: bool, samples: int | None) -> None:
    """Generate synthesisable Verilog for the whole early-exit design into RUN/rtl/."""
    from codesign.rtl import rtl_command

    r = rtl_command(run, verify, samples)
    line = f"wrote {r['rtl_dir']} (top {r['top']}, {len(r['sources'])} sources, {r['rom_files']} ROM files)"
    if verify:
        v = r["verify"]
        line += (f"; Verilator: {v['samples']} samples, {v['mismatches']} mismatches, "
                 f"{v['cycles_per_sample']:.1f} cycles/sample -> {r['rtl_dir']}/verify.json")
    click.echo(line)


@cli.command()
@RUN
@click.option("--traffic", default="data", show_default=True,
              help="data | iid:p0[,p1..] | markov:p0[,p1..],L | pattern:e0,e1,.. | trace:FILE")
@click.option("--samples", type=int, default=None, help="samples to stream (default: the test split size)")
@click.option("--backpressure", type=float, default=0.0, help="probability the consumer is not ready in a cycle")
@click.option("--gaps", type=float, default=0.0, help="probability the producer has no beat in a cycle")
@click.option("--seed", type=int, default=0)
@click.option("--sweep", default=None, help="several specs: iid:0.1..0.9[/N], markov:0.5,1..64[/N] or a;b;c")
@click.option("--fst", is_flag=True, help="also write an FST waveform RUN/sim/<name>.fst (keep --samples small)")
def sim(run: Path, traffic: str, samples: int | None, backpressure: float, gaps: float, seed: int,
        sweep: str | None, fst: bool) -> None:
    """Cycle-accurate throughput of RUN/rtl in Verilator under an exit-rate distribution; RUN/sim/<name>.json."""
    from codesign.sim_run import run_traffic, sweep as run_sweep

    if sweep and fst:
        raise UserError("--fst writes one simulation's waveform; leave it out with --sweep")
    if sweep:
        r = run_sweep(run, sweep, samples, seed)
        for p in r["points"]:
            click.echo(f"{p['traffic']}: measured {p['throughput_samples_per_cycle']:.5g}, predicted "
                       f"{p['predicted_throughput_samples_per_cycle']:.5g} samples/cycle ({100 * p['model_error']:+.1f} %)")
        click.echo(f"mean |error| {100 * r['mean_abs_model_error']:.2f} %, worst {100 * r['max_abs_model_error']:.2f} %; "
                   f"-> {run / 'sim' / 'sweep.json'}, {run / 'sim' / 'sweep.png'}")
        return
    r = run_traffic(run, traffic, samples, backpressure, gaps, seed, fst=fst)
    sb = r["scoreboard"]
    click.echo(f"{r['samples']} samples in {r['cycles']} cycles: measured {r['throughput_samples_per_cycle']:.5g} "
               f"samples/cycle ({r['throughput_samples_per_second']:.4g}/s), predicted "
               f"{r['predicted_throughput_samples_per_cycle']:.5g}; scoreboard lost {sb['lost']}, duplicated "
               f"{sb['duplicated']}, altered {sb['altered']}")
    if r["waveform"]:
        click.echo(f"waveform -> {r['waveform']}")
    if sb["lost"] or sb["duplicated"] or sb["altered"] or r["deadlock"]:
        raise StepFailed(f"scoreboard failed under {traffic}: {sb}, deadlock {r['deadlock']}")


@cli.command()
@RUN
@click.option("--family", type=click.Choice(["xc7", "xcup"]), default="xc7", help="yosys synth_xilinx family")
def synth(run: Path, family: str) -> None:
    """yosys synth_xilinx of RUN/rtl per stage and for the top, beside the model's figures; RUN/synth.json."""
    from codesign.synth_run import synth_run

    r = synth_run(run, family)
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
    from codesign.report import write_report

    html, md = write_report(run)
    click.echo(f"-> {html}, {md}")


@cli.command()
@RUN
def summary(run: Path) -> None:
    """A short summary of a run: accuracy per exit, exit fractions, artifacts."""
    from codesign.summary import summarise

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
    from codesign.sweep import sweep_command

    click.echo(sweep_command(sweep_yaml, out, address, max_parallel)["message"])


def main() -> None:
    import warnings

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

if __name__ == "__main__":
    main()
