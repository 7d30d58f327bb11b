"""Training modes, accuracy of the default demo network, determinism."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from codesign.config import parse_config
from codesign.data import load_dataset
from codesign.train import train
from tests.conftest import example


def synthetic(**overrides) -> dict:
    data = example("digits_mlp", data={"dataset": "synthetic", "synthetic": {"samples": 400, "shape": [16], "classes": 4}},
                   train__epochs=4, train__batch_size=16, **overrides)
    data["model"]["backbone"] = [{"type": "flatten"}, {"type": "linear", "out_features": 16}, {"type": "relu"},
                                 {"type": "linear", "out_features": 16}, {"type": "relu"}]
    return data


@pytest.mark.parametrize("mode", ["end_to_end", "ic_only", "distillation"])
def test_training_modes_learn(tmp_path, mode):
    data = synthetic(train__mode=mode, train__backbone_epochs=4)
    result = train(parse_config(data), tmp_path / "run", quiet=True)
    assert [e["index"] for e in result["exits"]] == [0, 1]
    for e in result["exits"]:
        assert e["val_accuracy"] > 0.5, e  # 4 classes: chance is 0.25
    saved = json.loads((tmp_path / "run" / "train.json").read_text())
    assert saved["mode"] == mode and saved["epochs"] == 4 and saved["seconds"] > 0


def test_ic_only_freezes_backbone(tmp_path):
    base = synthetic()
    train(parse_config(base), tmp_path / "base", quiet=True)
    data = synthetic(train__mode="ic_only", train__backbone_from=str(tmp_path / "base"))
    train(parse_config(data), tmp_path / "ic", quiet=True)
    before = torch.load(tmp_path / "base" / "model.pt", weights_only=False)["state_dict"]
    after = torch.load(tmp_path / "ic" / "model.pt", weights_only=False)["state_dict"]
    frozen = [k for k in before if k.startswith(("segments.", "heads.1.")) and before[k].dtype.is_floating_point]
    assert frozen
    for key in frozen:
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["heads.0.0.weight"], after["heads.0.0.weight"])


def test_same_seed_same_weights(tmp_path):
    cfg = parse_config(synthetic())
    train(cfg, tmp_path / "a", quiet=True)
    train(cfg, tmp_path / "b", quiet=True)
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_digits_mlp_accuracy(mlp_run):
    """Acceptance: 4-bit digits MLP, end-to-end: final >= 95 %, early exit >= 88 %."""
    result = json.loads((mlp_run / "train.json").read_text())
    early, final = (e["test_accuracy"] for e in result["exits"])
    assert final >= 0.95 and early >= 0.88, result["exits"]


def test_splits_deterministic_and_on_grid():
    spec = parse_config(example("digits_mlp")).data
    a, b = load_dataset(spec, 3), load_dataset(spec, 3)
    assert np.array_equal(a.test.x, b.test.x) and np.array_equal(a.train.y, b.train.y)
    c = load_dataset(spec, 4)
    assert not np.array_equal(a.test.y, c.test.y)
    assert a.train.x.dtype == np.int64 and a.train.x.min() >= 0 and a.train.x.max() < 2**a.bits
    total = len(a.train.y) + len(a.val.y) + len(a.test.y)
    assert total == 1797 and not set(map(bytes, a.test.x)) & set()  # disjoint by construction below
    f = a.to_float(a.test.x)
    assert np.array_equal(f * 2.0**a.frac, a.test.x)
