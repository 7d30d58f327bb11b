"""A run folder: the artifacts each step reads back."""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from codesign.frontend.config import Config
from codesign.frontend.data import Dataset, load_dataset
from stage_ir.errors import UserError
from codesign.frontend.model import EarlyExitNet, build_model


def require(run: Path, name: str, step: str) -> Path:
    """The path of an artifact an earlier step writes, or a UserError naming that step."""
    path = Path(run) / name
    if not path.exists():
        raise UserError(f"{path} not found; run `codesign {step} {run}` first")
    return path


def _unreadable(path: Path, err: Exception) -> str:
    """Why torch.load refused a file, in words (torch's own messages run to paragraphs)."""
    if path.stat().st_size == 0:
        return "empty file"
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut one loses its directory
        return "not a PyTorch archive: truncated, or another kind of file"
    if isinstance(err, pickle.UnpicklingError):
        return "it holds objects other than tensors, numbers and strings"
    return f"{type(err).__name__}: {' '.join(str(err).split())[:100]}"


def _state_dict_mismatch(err: RuntimeError) -> str:
    """The first tensor load_state_dict complained about."""
    text = " ".join(str(err).split())
    found = re.search(r"size mismatch for [\w.]+|(Missing|Unexpected) key\(s\) in state_dict: \"[\w.]+\"", text)
    return found.group(0) if found else text[:100]


def read_model_file(path: Path, fix: str) -> dict:
    """A model.pt as train writes it (state_dict, config, ...); anything else is one UserError line ending in `fix`."""
    path = Path(path)
    try:
        # weights_only: a model.pt holds tensors, dicts and numbers; refusing other pickles also
        # keeps a foreign file from running code
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch reports a damaged file as RuntimeError, EOFError, UnpicklingError, ...
        raise UserError(f"{path} is not a codesign model ({_unreadable(path, err)}); {fix}") from None
    if not (isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict) and isinstance(blob.get("config"), dict)):
        raise UserError(f"{path} is not a codesign model (no state_dict and config in it); {fix}")
    return blob


def load_trained(run: Path) -> tuple[Config, EarlyExitNet, Dataset]:
    """The trained model of a run, in eval mode, with its data set; the config is RUN/config.yaml,
    whose training sections must be those model.pt was trained with."""
    from codesign.frontend.config import load_config, training_sections

    path = require(run, "model.pt", "train")
    rerun = "rerun `codesign train` (or `codesign flow`) for this config"
    blob = read_model_file(path, rerun)
    cfg = load_config(require(run, "config.yaml", "train"))
    if blob["config"] != training_sections(cfg):
        raise UserError(f"{path} was trained with other settings than {Path(run) / 'config.yaml'} holds; {rerun}")
    ds = load_dataset(cfg.data, cfg.seed)
    model = build_model(cfg, ds.shape, ds.bits, ds.frac, ds.num_classes, folded=blob.get("batchnorm_folded", False))
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as err:
        raise UserError(f"{path} does not hold the network of {Path(run) / 'config.yaml'} "
                        f"({_state_dict_mismatch(err)}); {rerun}") from None
    model.eval()
    return cfg, model, ds
