"""A run folder: the artifacts each step reads back."""
from __future__ import annotations

from pathlib import Path

import torch

from codesign.config import Config, parse_config
from codesign.data import Dataset, load_dataset
from codesign.errors import UserError
from codesign.model import EarlyExitNet, build_model


def require(run: Path, name: str, step: str) -> Path:
    """The path of an artifact an earlier step writes, or a UserError naming that step."""
    path = Path(run) / name
    if not path.exists():
        raise UserError(f"{path} not found; run `codesign {step} {run}` first")
    return path


def load_trained(run: Path) -> tuple[Config, EarlyExitNet, Dataset]:
    """The trained model of a run, in eval mode, with its data set."""
    blob = torch.load(require(run, "model.pt", "train"), map_location="cpu", weights_only=False)
    cfg = parse_config(blob["config"], str(Path(run) / "model.pt"))
    ds = load_dataset(cfg.data, cfg.seed)
    model = build_model(cfg, ds.shape, ds.bits, ds.frac, ds.num_classes, folded=blob.get("batchnorm_folded", False))
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return cfg, model, ds
