"""`codesign flow`: every step from a config to a report, make-style.

A step runs when one of its outputs is missing or older than one of its
inputs (or with --force); otherwise it is skipped. The order puts `dse`
before `estimate` so that the estimate describes the chosen design, and every
step that rewrites design.json writes its own marker file after it, so a
rerun with nothing changed does no work.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from codesign.errors import StepFailed, UserError


@dataclass
class FlowContext:
    config: Path
    run: Path
    device: str | None = None
    log: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    name: str
    inputs: Callable[[FlowContext], list[Path]]
    outputs: tuple[str, ...]
    action: Callable[[FlowContext], str]
    missing_tool: Callable[[], str | None] = lambda: None  # why the step cannot run here, if so

    def output_paths(self, ctx: FlowContext) -> list[Path]:
        return [ctx.run / o for o in self.outputs]

    def up_to_date(self, ctx: FlowContext) -> bool:
        outs = self.output_paths(ctx)
        if not all(p.exists() for p in outs):
            return False
        ins = [p for p in self.inputs(ctx) if p.exists()]
        newest_in = max((p.stat().st_mtime_ns for p in ins), default=0)
        return min(p.stat().st_mtime_ns for p in outs) >= newest_in


def _files(*names: str) -> Callable[[FlowContext], list[Path]]:
    return lambda ctx: [ctx.run / n for n in names]


def _do_train(ctx: FlowContext) -> str:
    from codesign.config import load_config
    from codesign.train import train

    cfg = load_config(ctx.config)
    ctx.run.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".train-", dir=ctx.run))
    try:
        result = train(cfg, scratch, quiet=True)
        for name in ("model.pt", "config.yaml", "train.json"):
            (scratch / name).replace(ctx.run / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return "test accuracy " + ", ".join(f"{e['test_accuracy']:.4f}" for e in result["exits"])


def _do_calibrate(ctx: FlowContext) -> str:
    from codesign.calibrate_run import calibrate_run
    from codesign.config import load_config

    cfg = load_config(ctx.run / "config.yaml")
    r = calibrate_run(ctx.run, cfg.policy.kind, accuracy_delta=cfg.policy.accuracy_delta)
    return f"{r['kind']} thresholds {r['thresholds']}"


def _do_evaluate(ctx: FlowContext) -> str:
    from codesign.evaluate import evaluate_run

    r = evaluate_run(ctx.run)
    return f"accuracy {r['overall_accuracy']:.4f}, exit fractions {[round(e['exit_fraction'], 3) for e in r['exits']]}"


def _do_export(ctx: FlowContext) -> str:
    from codesign.export import export

    r = export(ctx.run)
    return f"{r['samples']} test samples, {r['mismatches']} mismatches"


def _device(ctx: FlowContext) -> str:
    from codesign.ir import load_design

    return ctx.device or load_design(ctx.run).device


def _do_dse(ctx: FlowContext) -> str:
    from codesign.estimate_run import dse_run

    r = dse_run(ctx.run, _device(ctx))
    return f"predicted gain {r['predicted_gain']:.2f}x on {r['device']}"


def _do_estimate(ctx: FlowContext) -> str:
    from codesign.estimate_run import estimate_run

    r = estimate_run(ctx.run, [_device(ctx)])
    return f"{r['throughput_samples_per_cycle']:.4g} samples/cycle predicted"


STEPS: list[Step] = [
    Step("train", lambda ctx: [ctx.config], ("model.pt", "train.json"), _do_train),
    Step("calibrate", _files("model.pt"), ("policy.json",), _do_calibrate),
    Step("evaluate", _files("policy.json"), ("eval.json", "eval.png"), _do_evaluate),
    Step("export", _files("model.pt", "policy.json"), ("design.json", "export/verify.json"), _do_export),
    Step("dse", _files("export/verify.json", "eval.json"), ("dse.json",), _do_dse),
    Step("estimate", _files("dse.json", "design.json"), ("estimate.json",), _do_estimate),
]


def register(step: Step, after: str | None = None) -> None:
    """Add a back end's step to the flow (after `after`, else at the end)."""
    names = [s.name for s in STEPS]
    if step.name in names:
        STEPS[names.index(step.name)] = step
        return
    STEPS.insert(names.index(after) + 1 if after else len(STEPS), step)


def select_steps(spec: str | None) -> list[Step]:
    names = [s.name for s in STEPS]
    if not spec:
        return list(STEPS)
    wanted = [w.strip() for w in spec.split(",") if w.strip()]
    if len(wanted) == 1 and ".." in wanted[0]:
        a, b = wanted[0].split("..")
        for n in (a, b):
            if n and n not in names:
                raise UserError(f"unknown flow step {n!r}; steps: {', '.join(names)}")
        return STEPS[names.index(a) if a else 0: names.index(b) + 1 if b else len(STEPS)]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise UserError(f"unknown flow step {unknown[0]!r}; steps: {', '.join(names)} (or a range like train..export)")
    return [s for s in STEPS if s.name in wanted]


@dataclass
class StepResult:
    name: str
    status: str  # ran | skipped | unavailable
    seconds: float
    detail: str


def run_flow(config: Path, run: Path, steps: str | None = None, force: bool = False, device: str | None = None,
             on_step: Callable[[StepResult], None] | None = None) -> list[StepResult]:
    """Run the selected steps in order; a failing step raises UserError naming it (earlier artifacts stay)."""
    from codesign.config import load_config

    load_config(config)  # a bad config fails before anything is written
    ctx = FlowContext(Path(config), Path(run), device)
    results = []
    for step in select_steps(steps):
        started = time.perf_counter()
        reason = step.missing_tool()
        if reason:
            res = StepResult(step.name, "unavailable", 0.0, reason)
        elif not force and step.up_to_date(ctx):
            res = StepResult(step.name, "skipped", 0.0, "up to date")
        else:
            try:
                detail = step.action(ctx)
            except UserError as err:
                raise UserError(f"flow stopped at step '{step.name}': {err} (artifacts of the earlier steps are "
                                f"in {run}; fix this, then rerun the same command)") from None
            except Exception as err:  # an internal error still names the step
                raise StepFailed(f"flow stopped at step '{step.name}' on an internal error ({type(err).__name__}: "
                                f"{err}); run `codesign {step.name} {run}` alone for the full trace") from err
            res = StepResult(step.name, "ran", round(time.perf_counter() - started, 2), detail)
        results.append(res)
        if on_step:
            on_step(res)
    return results
