"""A few lines that tell a user where a run stands."""
from __future__ import annotations

from pathlib import Path

from codesign.store import timings
from codesign.store.artifacts import read_artifact
from stage_ir.errors import UserError


def _load(run: Path, name: str) -> dict | None:
    return read_artifact(run, name, missing_ok=True)


def summarise(run: Path) -> str:
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"{run} is not a folder; give a run folder made by `codesign train` (or `codesign flow`)")
    lines = [f"run {run}"]
    train = _load(run, "train.json")
    if train:
        accs = ", ".join(f"exit {e['index']} {e['test_accuracy']:.4f}" for e in train["exits"])
        secs = timings.read(run).get("train", {}).get("seconds")
        lines.append(f"  test accuracy per exit: {accs} ({train['mode']}" + (f", {secs} s)" if secs else ")"))
    ev = _load(run, "eval.json")
    if ev:
        fr = ", ".join(f"exit {e['index']} {e['exit_fraction']:.3f}" for e in ev["exits"])
        lines.append(f"  {ev['policy']} exits: {fr}; overall accuracy {ev['overall_accuracy']:.4f} "
                     f"(final exit only {ev['final_accuracy']:.4f}); MACs {ev['mac_fraction']:.3f} of no-exit")
    built = built_line(run)
    if built:
        lines.append(f"  {built}")
    ver = _load(run, "export/verify.json")
    if ver:
        lines.append(f"  export: torch == QONNX == integer reference on {ver['samples']} test samples, "
                     f"{ver['mismatches']} mismatches")
    artifacts = [p.name for p in sorted(run.iterdir()) if not p.name.startswith(".")]
    lines.append(f"  artifacts: {', '.join(artifacts)}")
    stale = out_of_date(run)
    if stale:
        lines.append("  out of date: " + "; ".join(f"{name} ({why})" for name, why in stale)
                     + " (rerun them, or `codesign flow`)")
    return "\n".join(lines)


def built_line(run: Path) -> str | None:
    """Which exits design.json builds and whether eval.json evaluated that design."""
    from codesign.commands.estimate_run import eval_describes
    from stage_ir import DESIGN_FILE
    from codesign.design.ir import load_design

    if not (run / DESIGN_FILE).is_file():
        return None
    design = load_design(run)
    ev = _load(run, "eval.json")
    dropped = f", dropped {design.exits_dropped}" if design.exits_dropped else ""
    stale = "; eval.json evaluated another design (rerun `codesign evaluate`)" if ev and not eval_describes(ev, design) else ""
    return f"built design: exits kept {design.exits_kept}{dropped} (design.json){stale}"


def headline(run: Path) -> str:
    """The lines `codesign flow` ends with (what is not measured yet says so)."""
    run = Path(run)
    ev, dse = _load(run, "eval.json"), _load(run, "dse.json")
    sim = _load(run, "sim/data.json")
    built = built_line(run)
    lines = [built] if built else []
    if ev:
        lines.append(f"accuracy: {ev['overall_accuracy']:.4f} early-exit vs {ev['final_accuracy']:.4f} final exit only "
                     f"({ev['samples']} test samples)")
        lines.append("exit fractions: " + ", ".join(f"exit {e['index']} {e['exit_fraction']:.3f}" for e in ev["exits"]))
    if dse:
        sized = f", sized for continue rates +{dse['rate_z']:g} std. errors" if dse.get("rate_z") else ""
        lines.append(f"predicted throughput: {dse['chosen']['throughput_samples_per_cycle']:.4g} samples/cycle on "
                     f"{dse['device']}{sized} (no-exit baseline {dse['baseline']['throughput_samples_per_cycle']:.4g})")
    measured = "not simulated yet (run `codesign sim`)"
    if sim:
        measured = (f"{sim['throughput_samples_per_cycle']:.4g} samples/cycle in Verilator on {sim['samples']} samples "
                    f"(predicted {sim['predicted_throughput_samples_per_cycle']:.4g})")
    lines.append(f"measured throughput: {measured}")
    if dse:
        lines.append(f"gain over no-exit baseline at equal resources: {dse['predicted_gain']:.2f}x predicted"
                     + (f", {sim['measured_gain']:.2f}x measured" if sim and sim.get("measured_gain") else ""))
    report = run / "report.html"
    lines.append(f"report: {report}" if report.is_file() else f"artifacts: {run}")
    return "\n".join(lines)


def out_of_date(run: Path) -> list[tuple[str, str]]:
    """Steps that ran here but whose inputs or outputs changed since (options aside: they are the
    command's to give)."""
    from codesign.store.runfolder import read_stamp, staleness
    from codesign.commands.steps import STEPS

    return [(s.name, why) for s in STEPS if read_stamp(run, s.name) and (why := staleness(run, s, None))]
