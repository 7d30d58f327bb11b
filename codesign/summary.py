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
