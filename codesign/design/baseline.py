"""The no-exit baseline of an early-exit design: the same backbone and final classifier, no early heads.

It is written as a run folder of its own (RUN/baseline/) whose design.json
reuses the parent's integer weights, so every back end (hw_models, RTL,
Verilator) treats it exactly like any other design.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from stage_ir import Design, Stage
from codesign.design.ir import load_design, save_design
from hw_models.stages import decide

BASELINE_DIR = "baseline"


def no_exit_design(design: Design, folding: dict[str, dict] | None = None) -> Design:
    """One stage: every backbone segment in order, then the final classifier."""
    last = design.stages[-1]
    layers = [layer for stage in design.stages for layer in stage.layers]
    stage = Stage(index=0, input=design.stages[0].input, layers=layers, features=None, head=last.head,
                  logits=last.logits, buffer_depth=None,
                  export_stages=[e for s in design.stages for e in s.export_stages],
                  macs={"backbone": sum(s.macs["backbone"] for s in design.stages), "head": last.macs["head"]})
    new = design.model_copy(update={"stages": [stage], "policy": None, "name": f"{design.name}_noexit"}, deep=True)
    for layer in new.layers():
        if hasattr(layer, "weight"):  # the baseline folder sits inside the run: weights are one level up
            layer.weight, layer.bias = f"../{layer.weight}", f"../{layer.bias}"
    # its own hardware decisions, by the rules the DSE costed the baseline with
    return decide(new, folding)


def write_baseline(run: Path, folding: dict[str, dict] | None = None) -> Path:
    """RUN/baseline/: design.json (+ config.yaml so the data set resolves) of the no-exit network."""
    run = Path(run)
    folder = run / BASELINE_DIR
    folder.mkdir(exist_ok=True)
    shutil.copyfile(run / "config.yaml", folder / "config.yaml")
    design = no_exit_design(load_design(run), folding)
    design._root = folder
    save_design(design, folder)
    return folder
