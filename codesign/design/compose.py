"""RUN/design.json = the exported IR + the calibrated policy (+ the DSE's choice) + the hardware
decisions, composed in one place.

`codesign export`, `calibrate` and `dse` all write design.json through `write_design`, so
what the back ends build is always derived from RUN/export/design.json (every exit, as
exported) and never from an earlier design.json: rerunning calibrate or dse starts from
the whole network again. With a DSE choice, the exits it drops are not in design.json at
all: a dropped exit's stage merges into the next kept stage (hw_models.exit_subsets.chosen_design),
and the policy keeps the kept exits' thresholds and tables only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from stage_ir import policies
from codesign.store.artifacts import read_artifact
from stage_ir.errors import UserError
from stage_ir import Design, Policy
from codesign.design.ir import load_exported_design, save_design

POLICY_FILE = "policy.json"


def policy_tables(design: Design, kind: str) -> dict[str, Any]:
    """The integer tables of `kind` for the design's exits (one entry per early exit)."""
    return policies.make_tables(kind, [s.logits.frac for s in design.stages], design.num_classes,
                                [s.logits.bits for s in design.stages])


def calibrated_policy(run: Path) -> Policy | None:
    """The policy of RUN/policy.json (the whole network's exits), or None before calibration."""
    pol = read_artifact(run, POLICY_FILE, missing_ok=True)  # one line for a corrupt or wrong-shaped file
    if pol is None:
        return None
    return Policy.model_validate({k: pol[k] for k in ("kind", "thresholds", "tables", "float_thresholds")})


def compose_design(exported: Design, policy: Policy | None, choice: dict[str, Any] | None = None) -> Design:
    """The design to build: `exported` with `policy`, reduced to the DSE's `choice` if given.

    `choice` is dse.json's `chosen` (exits_kept, folding, buffer_depths, thresholds: one per
    kept early exit). Keeping no early exit gives one stage and no policy. The result holds its
    hardware decisions (hw_models.decide): the DSE's folding and depths, the rest by rule."""
    if policy is not None and len(policy.thresholds) != exported.num_exits - 1:
        raise UserError(f"{exported.root / POLICY_FILE} has {len(policy.thresholds)} thresholds but the export has "
                        f"{exported.num_exits - 1} early exits; rerun `codesign calibrate {exported.root}`")
    if choice is None:
        data = {**exported.as_dict(), "policy": policy.model_dump() if policy is not None else None}
    else:
        from hw_models.exit_subsets import chosen_design

        data = chosen_design(exported.model_copy(update={"policy": None}), choice).as_dict()
    design = Design.model_validate(data)
    design._root, design._cache = exported.root, exported._cache  # same arrays, same paths
    if choice is not None and design.num_exits > 1 and policy is not None:
        kind = policy.kind
        tables = policy_tables(design, kind)
        thresholds = policies.check_thresholds(kind, tables, [int(t) for t in choice["thresholds"]])
        design.policy = Policy(kind=kind, thresholds=thresholds, tables=tables,
                               float_thresholds=[policies.int_to_float_threshold(kind, t, tables, k)
                                                 for k, t in enumerate(thresholds)])
    from hw_models.stages import decide

    # the hardware decisions the back ends read (the threshold unit's form follows the policy);
    # a model copy keeps the run folder and the loaded arrays
    return decide(design)


def write_design(run: Path, choice: dict[str, Any] | None = None, device: str | None = None) -> Design:
    """Compose RUN/design.json from RUN/export/design.json, RUN/policy.json and the DSE's `choice`."""
    run = Path(run)
    design = compose_design(load_exported_design(run), calibrated_policy(run), choice)
    if device is not None:
        design.device = device
    save_design(design, run)
    return design
