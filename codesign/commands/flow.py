"""`codesign flow`: every step from a config to a report, make-style by content.

A step runs when it has no record, when anything it read (files, config sections, data files,
options such as --device) differs from what its record says, or when an output of its own is missing
or changed; otherwise it is skipped (codesign.store.runfolder). The flow holds the run folder's lock for
all its steps, and first makes RUN/config.yaml the given config (every step reads its sections there).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from stage_ir.errors import StepFailed, UserError, VerificationFailed
from codesign.store.runfolder import Outcome, RunLock, Step, execute
from codesign.commands.steps import BY_NAME, CONFIG, STEPS, flow_params

StepResult = Outcome  # what on_step receives: name, status (ran | skipped | unavailable), seconds, detail


def select_steps(spec: str | None) -> list[Step]:
    """The steps a --steps value names: a comma list or a range `a..b` (either end may be left out)."""
    names = [s.name for s in STEPS]
    if not spec or not spec.strip():
        return list(STEPS)
    wanted = [w.strip() for w in spec.split(",") if w.strip()]
    if len(wanted) == 1 and ".." in wanted[0]:
        a, _, b = wanted[0].partition("..")
        a, b = a.strip(), b.strip()
        for n in (a, b):
            if n and n not in names:
                raise UserError(f"unknown flow step {n!r}; steps: {', '.join(names)}")
        lo, hi = names.index(a) if a else 0, names.index(b) if b else len(names) - 1
        if lo > hi:
            raise UserError(f"flow steps {a}..{b} run backwards ({b} comes before {a}); steps in order: "
                            f"{', '.join(names)}")
        return STEPS[lo:hi + 1]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise UserError(f"unknown flow step {unknown[0]!r}; steps: {', '.join(names)} (or a range like train..export)")
    return [s for s in STEPS if s.name in wanted]


def _checked_config(config: Path, selected: list[Step], device: str | None):
    """Everything the flow can check before it writes anything."""
    from codesign.frontend.config import dump_config, load_config
    from codesign.commands.steps import device_option

    cfg = load_config(config)
    names = {s.name for s in selected}
    if not cfg.model.exits and names & {"calibrate", "dse", "evaluate", "sim"}:
        raise UserError(f"{config}: model.exits is empty, but the flow's calibrate step needs at least one early "
                        f"exit; add one under model.exits (see examples/digits_mlp.yaml) or run `codesign train`")
    device_option(device if device is not None else cfg.hardware.device)
    if "train" in names:
        from codesign.frontend.train import check_inputs

        check_inputs(cfg)
    return cfg, dump_config(cfg)


def run_flow(config: Path, run: Path, steps: str | None = None, force: bool = False, device: str | None = None,
             on_step: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run the selected steps in order; a failing step raises naming it (earlier steps' artifacts stay)."""
    from codesign.store.digests import value_digest

    selected = select_steps(steps)
    cfg, text = _checked_config(Path(config), selected, device)
    run = Path(run)
    results: list[Outcome] = []
    with RunLock(run, command=f"codesign flow {config} --out {run}"):
        for step in [CONFIG, *selected]:
            params = {"_config": cfg} if step.name == "train" else flow_params(step.name, run, device)
            if step is CONFIG:
                params = {"config": value_digest(text), "_text": text}
            try:
                res = execute(run, step, params, force=force and step is not CONFIG, registry=BY_NAME)
            except VerificationFailed as err:
                raise VerificationFailed(f"flow stopped at step '{step.name}': {err}") from None
            except UserError as err:
                raise UserError(f"flow stopped at step '{step.name}': {err} (artifacts of the earlier steps are "
                                f"in {run}; fix this, then rerun the same command)") from None
            except StepFailed as err:  # a verification failure: its report is in the run
                raise type(err)(f"flow stopped at step '{step.name}': {err}") from None
            except Exception as err:  # an internal error still names the step
                raise StepFailed(f"flow stopped at step '{step.name}' on an internal error ({type(err).__name__}: "
                                 f"{str(err).splitlines()[0] if str(err) else ''}); run `codesign --debug {step.name} "
                                 f"{run}` for the traceback") from err
            if step is CONFIG:
                continue
            results.append(res)
            if on_step:
                on_step(res)
    return results
