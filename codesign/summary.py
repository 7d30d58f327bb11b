"""A few lines that tell a user where a run stands."""
from __future__ import annotations

import json
from pathlib import Path


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def summarise(run: Path) -> str:
    run = Path(run)
    lines = [f"run {run}"]
    train = _load(run / "train.json")
    if train:
        accs = ", ".join(f"exit {e['index']} {e['test_accuracy']:.4f}" for e in train["exits"])
        lines.append(f"  test accuracy per exit: {accs} ({train['mode']}, {train['seconds']} s)")
    ev = _load(run / "eval.json")
    if ev:
        fr = ", ".join(f"exit {e['index']} {e['exit_fraction']:.3f}" for e in ev["exits"])
        lines.append(f"  {ev['policy']} exits: {fr}; overall accuracy {ev['overall_accuracy']:.4f} "
                     f"(final exit only {ev['final_accuracy']:.4f}); MACs {ev['mac_fraction']:.3f} of no-exit")
    ver = _load(run / "export" / "verify.json")
    if ver:
        lines.append(f"  export: torch == QONNX == integer reference on {ver['samples']} test samples, "
                     f"{ver['mismatches']} mismatches")
    artifacts = [p.name for p in sorted(run.iterdir()) if not p.name.startswith(".")]
    lines.append(f"  artifacts: {', '.join(artifacts)}")
    return "\n".join(lines)


def headline(run: Path) -> str:
    """The five lines `codesign flow` ends with (what is not measured yet says so)."""
    run = Path(run)
    ev, dse = _load(run / "eval.json"), _load(run / "dse.json")
    sim = _load(run / "sim" / "data.json")
    lines = []
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
