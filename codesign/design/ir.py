"""Reading and writing the stage IR of a run folder (RUN/design.json, RUN/export/design.json).

The schema is stage_ir.design's; reading here adds what only a run folder knows: the artifact's shape
check and the command that rewrites it, and the stored policy's check against its threshold units.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from codesign.store.artifacts import read_artifact, validation_message
from stage_ir.design import DESIGN_FILE, EXPORTED_FILE, SCHEMA, Design
from stage_ir.errors import UserError


def save_design(design: Design, run: Path, name: str = DESIGN_FILE) -> Path:
    path = Path(run) / name
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(design.dump())
    tmp.replace(path)  # never leave a half-written IR behind
    return path


def load_design(run: str | Path, check_policy: bool = True) -> Design:
    """Read and validate RUN/design.json; array paths resolve against RUN (checked when first used).

    `check_policy`: the exit policy's thresholds must fit their threshold units (calibrate, which
    replaces the policy, passes False)."""
    return _load(Path(run), DESIGN_FILE, check_policy)


def load_exported_design(run: str | Path) -> Design:
    """Read and validate RUN/export/design.json (the IR as exported); array paths resolve against RUN."""
    return _load(Path(run), EXPORTED_FILE, False)


def _load(run: Path, name: str, check_policy: bool) -> Design:
    path = run / name
    data = read_artifact(run, name)
    if data.get("schema") != SCHEMA:
        raise UserError(f"{path}: schema {data.get('schema')!r} is not {SCHEMA}; rerun `codesign export {run}`")
    try:
        design = Design.model_validate(data)
    except ValidationError as err:
        raise UserError(f"{path}: {validation_message(err)}; rerun `codesign export {run}`") from None
    design._root = run
    if check_policy and design.policy is not None and design.num_exits >= 2:
        _check_policy(design, path)
    return design


def _check_policy(design: Design, path: Path) -> None:
    """The thresholds of the policy within what its threshold units' ports hold (policies.threshold_range)."""
    from stage_ir import policies

    p = design.policy
    fix = f"rerun `codesign calibrate {design.root}`"
    if p.tables.get("num_exits") != design.num_exits:
        raise UserError(f"{path}: the {p.kind} policy is for {p.tables.get('num_exits')} exits, the design has "
                        f"{design.num_exits}; {fix}")
    policies.check_stored(p.kind, p.tables, p.thresholds, f"{path}: policy", fix)
