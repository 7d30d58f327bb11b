"""Shared fixtures: small trained runs, built once per session."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from codesign.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def example(name: str, **overrides) -> dict:
    """An example config as a dict, with dotted-key overrides (e.g. train__epochs=3)."""
    data = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    for key, value in overrides.items():
        node = data
        *path, last = key.split("__")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return data


def write_config(tmp: Path, data: dict, name: str = "cfg.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _trained(tmp_path_factory, name: str, data: dict | None = None, **overrides) -> Path:
    from codesign.export import export
    from codesign.train import train

    cfg = parse_config(data if data is not None else example(name, **overrides))
    run = tmp_path_factory.mktemp(name) / "run"
    train(cfg, run, quiet=True)
    export(run)
    return run


def calibrated_copy(run: Path, tmp_path_factory, evaluate: bool = False) -> Path:
    """A private copy of a session run, calibrated (max_softmax, delta 1 pp) and optionally evaluated."""
    import shutil

    from codesign.calibrate_run import calibrate_run
    from codesign.evaluate import evaluate_run

    copy = tmp_path_factory.mktemp(run.parent.name) / "run"
    shutil.copytree(run, copy)
    calibrate_run(copy, "max_softmax", accuracy_delta=1.0)
    if evaluate:
        evaluate_run(copy)
    return copy


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory) -> Path:
    """The default digits MLP, fully trained (about 7 s) and exported."""
    return _trained(tmp_path_factory, "digits_mlp")


@pytest.fixture(scope="session")
def cnn_run(tmp_path_factory) -> Path:
    return _trained(tmp_path_factory, "digits_cnn", train__epochs=15)


@pytest.fixture(scope="session")
def cnn_valid_run(tmp_path_factory) -> Path:
    """The digits CNN with a valid (unpadded) first conv: 8x8 -> 8x6x6, 36 output pixels for 64 input
    pixels, so one pixel per input beat would bound a first conv that makes a pixel per cycle."""
    data = example("digits_cnn", train__epochs=15)
    data["model"]["backbone"][0]["padding"] = 0
    return _trained(tmp_path_factory, "digits_cnn_valid", data)


@pytest.fixture(scope="session")
def mlp3_run(tmp_path_factory) -> Path:
    return _trained(tmp_path_factory, "digits_mlp3", train__epochs=25)

