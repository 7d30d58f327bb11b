"""Training modes: end-to-end joint loss, IC-only on a frozen backbone, distillation."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from codesign.frontend.config import Config, dump_config, training_sections
from codesign.frontend.data import Dataset, check_files, load_dataset
from stage_ir.errors import UserError
from codesign.frontend.model import EarlyExitNet, build_model, fold_batchnorm, has_batchnorm
from codesign.store.timings import write_json


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)


def exit_weights(cfg: Config) -> list[float]:
    return [e.weight for e in cfg.model.exits] + [cfg.model.final_weight]


def _distill_term(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) on temperature-softened distributions, scaled by T^2 (Hinton et al.)."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, dim=1), F.softmax(teacher.detach() / t, dim=1),
                    reduction="batchmean") * t * t


def joint_loss(outs: list[torch.Tensor], y: torch.Tensor, cfg: Config, active: list[int]) -> torch.Tensor:
    """sum_i w_i L_i over the exits being trained; L_i gains the distillation term in that mode."""
    weights = exit_weights(cfg)
    mode, d = cfg.train.mode, cfg.train.distill
    total = torch.zeros(())
    for i in active:
        loss = F.cross_entropy(outs[i], y)
        if mode == "distillation" and i < len(outs) - 1:
            teacher = outs[-1] if d.teacher == "final" else outs[i + 1]
            loss = loss + d.alpha * _distill_term(outs[i], teacher, d.temperature)
        total = total + weights[i] * loss
    return total


@torch.no_grad()
def exit_accuracies(model: EarlyExitNet, ds: Dataset, split: str, batch: int = 512) -> list[float]:
    model.eval()
    part = ds.split(split)
    correct = np.zeros(model.num_exits)
    for start in range(0, len(part.y), batch):
        x = torch.from_numpy(ds.to_float(part.x[start:start + batch]))
        y = part.y[start:start + batch]
        for k, out in enumerate(model(x)):
            correct[k] += int((out.argmax(1).numpy() == y).sum())
    return [float(c / len(part.y)) for c in correct]


@dataclass
class Phase:
    """One optimisation pass: which exits' losses count and which parameters move."""

    name: str
    epochs: int
    active: list[int]
    frozen_backbone: bool


def _phases(cfg: Config, num_exits: int, pretrained: bool) -> list[Phase]:
    every = list(range(num_exits))
    if cfg.train.mode != "ic_only":
        return [Phase(cfg.train.mode, cfg.train.epochs, every, False)]
    phases = [] if pretrained else [Phase("backbone", cfg.train.backbone_epochs, [num_exits - 1], False)]
    return phases + [Phase("exit heads", cfg.train.epochs, every[:-1], True)]


def _freeze_backbone(model: EarlyExitNet, frozen: bool) -> None:
    frozen_mods = [model.input_quant, *model.segments, model.heads[-1]]
    for mod in frozen_mods:
        for p in mod.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            mod.eval()  # keeps activation-scale statistics of the backbone fixed


def run_phase(model: EarlyExitNet, ds: Dataset, cfg: Config, phase: Phase, progress: Progress) -> None:
    gen = torch.Generator().manual_seed(cfg.seed + len(phase.name))
    if phase.frozen_backbone:
        _freeze_backbone(model, True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=phase.epochs)
    x_all = torch.from_numpy(ds.to_float(ds.train.x))
    y_all = torch.from_numpy(ds.train.y)
    task = progress.add_task(phase.name, total=phase.epochs, acc="")
    for epoch in range(phase.epochs):
        model.train()
        if phase.frozen_backbone:
            _freeze_backbone(model, True)
        order = torch.randperm(len(y_all), generator=gen)
        for start in range(0, len(order), cfg.train.batch_size):
            idx = order[start:start + cfg.train.batch_size]
            loss = joint_loss(model(x_all[idx]), y_all[idx], cfg, phase.active)
            if not torch.isfinite(loss):  # every later step would blame the quantisers of a NaN network
                raise UserError(f"training diverged: the loss is {loss.item()} in epoch {epoch + 1} of {phase.name}; "
                                f"lower train.lr (now {cfg.train.lr:g})")
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        accs = exit_accuracies(model, ds, "val")
        progress.update(task, advance=1, acc="val " + " ".join(f"{a:.3f}" for a in accs))
    _freeze_backbone(model, False)


def _backbone_blob(run: str) -> dict:
    from codesign.frontend.run import read_model_file

    path = Path(run) / "model.pt"
    if not path.is_file():
        raise UserError(f"train.backbone_from: {path} not found; train that run first")
    try:
        return read_model_file(path, "rerun `codesign train` for that run or point train.backbone_from at another")
    except UserError as err:
        raise UserError(f"train.backbone_from: {err}") from None


def check_inputs(cfg: Config) -> None:
    """What a config points at, checked before anything is written: the data set's files (headers and
    sizes) and the model.pt of train.backbone_from."""
    check_files(cfg.data)
    if cfg.train.mode == "ic_only" and cfg.train.backbone_from is not None:
        _backbone_blob(cfg.train.backbone_from)


def _load_backbone(model: EarlyExitNet, run: str) -> None:
    state = _backbone_blob(run)["state_dict"]
    own = model.state_dict()
    keep = {k: v for k, v in state.items() if not k.startswith("heads.") or k.startswith(f"heads.{model.num_exits - 1}.")}
    # learned activation scales appear in a state dict only after training: Brevitas loads them itself
    mismatched = [k for k, v in keep.items() if k in own and own[k].shape != v.shape]
    mismatched += [k for k in own if k.startswith("segments.") and k not in keep]
    if mismatched:
        raise UserError(f"train.backbone_from: {run} has a different backbone ({mismatched[0]}); use a run of the same backbone")
    model.load_state_dict(keep, strict=False)


def train(cfg: Config, out: Path, quiet: bool = False) -> dict:
    """Train per cfg and write out/model.pt, out/config.yaml, out/train.json."""
    seed_everything(cfg.seed)
    started = time.perf_counter()
    ds = load_dataset(cfg.data, cfg.seed)
    model = build_model(cfg, ds.shape, ds.bits, ds.frac, ds.num_classes)
    pretrained = cfg.train.mode == "ic_only" and cfg.train.backbone_from is not None
    if pretrained:
        _load_backbone(model, cfg.train.backbone_from)
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[acc]}"), TimeElapsedColumn()]
    with Progress(*columns, disable=quiet, transient=False) as progress:
        for phase in _phases(cfg, model.num_exits, pretrained):
            run_phase(model, ds, cfg, phase, progress)
    folded = has_batchnorm(cfg)
    if folded:  # what the hardware will run, and what every later step loads
        model = fold_batchnorm(model, cfg, ds.shape, ds.bits, ds.frac, ds.num_classes)
    split_acc = {s: exit_accuracies(model, ds, s) for s in ("train", "val", "test")}
    result = {
        "mode": cfg.train.mode,
        "dataset": ds.name,
        "epochs": cfg.train.epochs,
        "seed": cfg.seed,
        "samples": {s: int(len(ds.split(s).y)) for s in ("train", "val", "test")},
        "exits": [
            {"index": k, "train_accuracy": split_acc["train"][k], "val_accuracy": split_acc["val"][k],
             "test_accuracy": split_acc["test"][k]}
            for k in range(model.num_exits)
        ],
        "seconds": round(time.perf_counter() - started, 2),
        "batchnorm_folded": folded,
    }
    out.mkdir(parents=True, exist_ok=True)
    # only what training depends on: model.pt's bytes do not change with the hardware or policy sections
    torch.save({"state_dict": model.state_dict(), "config": training_sections(cfg), "batchnorm_folded": folded,
                "input": {"shape": list(ds.shape), "bits": ds.bits, "frac": ds.frac},
                "num_classes": ds.num_classes}, out / "model.pt")
    (out / "config.yaml").write_text(dump_config(cfg))
    write_json(out / "train.json", result)
    return result
