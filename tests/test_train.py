"""Training modes, accuracy of the default demo network, determinism."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from codesign.frontend.config import parse_config
from codesign.frontend.data import load_dataset
from codesign.frontend.train import train
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
    # wall-clock seconds are returned, and kept out of train.json (codesign.store.timings)
    assert saved["mode"] == mode and saved["epochs"] == 4 and "seconds" not in saved and result["seconds"] > 0


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
    from sklearn.datasets import load_digits

    # every sample in exactly one split: the splits' rows are the data set's rows, as a multiset
    full = load_digits().images.astype(np.int64).reshape(len(load_digits().target), -1)
    parts = np.concatenate([a.train.x, a.val.x, a.test.x]).reshape(len(full), -1)
    assert sorted(map(bytes, parts)) == sorted(map(bytes, full))
    f = a.to_float(a.test.x)
    assert np.array_equal(f * 2.0**a.frac, a.test.x)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_loads(tmp_path, gz):
    """The IDX reader on a well-formed folder (.gz or unpacked): the bad-input cases damage copies of it."""
    from codesign.frontend.data import check_files
    from tests.test_bad_inputs import write_idx_folder

    rng = np.random.default_rng(5)
    arrays = {"train_x": rng.integers(0, 256, (120, 28, 28)), "train_y": rng.integers(0, 10, 120),
              "test_x": rng.integers(0, 256, (30, 28, 28)), "test_y": rng.integers(0, 10, 30)}
    folder = write_idx_folder(tmp_path / "idx", gz=gz, **arrays)
    spec = parse_config(example("digits_mlp", data={"dataset": "fashion-mnist", "path": str(folder)})).data
    check_files(spec)
    ds = load_dataset(spec, 0)
    assert (ds.shape, ds.bits, ds.frac, ds.num_classes) == ((1, 28, 28), 8, 8, 10)
    assert np.array_equal(ds.test.x[:, 0], arrays["test_x"]) and np.array_equal(ds.test.y, arrays["test_y"])
    pixels = np.concatenate([ds.train.x, ds.val.x]).reshape(120, -1)
    assert sorted(map(bytes, pixels.astype(np.uint8))) == sorted(map(bytes, arrays["train_x"].astype(np.uint8).reshape(120, -1)))


def digits_npz(path: Path, as_float: bool = False, val: bool = False, flat: bool = False) -> Path:
    """sklearn's digits as a user's .npz: uint8 0..255 images [N, 8, 8] (or [N, 64]), or those / 255 as
    float; with `val`, a validation split of its own."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images * 15).astype(np.uint8)  # 0..16 -> 0..240
    x = x.reshape(len(x), -1) if flat else x
    x = x.astype(np.float32) / 255.0 if as_float else x
    y = d.target.astype(np.int64)
    parts = {"x_train": x[:1200], "y_train": y[:1200], "x_test": x[1500:], "y_test": y[1500:]}
    if val:
        parts.update(x_val=x[1200:1500], y_val=y[1200:1500])
    np.savez(path, **parts)
    return path


@pytest.mark.parametrize("as_float,val,flat", [(False, False, False), (True, True, False), (False, True, True)])
def test_npz_data_set_file(tmp_path, as_float, val, flat):
    """data.dataset npz: uint8 and float / 255 give the same grid integers (p / 256), [N, H, W] gets a
    channel and [N, F] becomes [1, 1, F], x_val is used when given, else val_fraction of x_train."""
    from codesign.frontend.data import check_files, source_files

    path = digits_npz(tmp_path / "d.npz", as_float=as_float, val=val, flat=flat)
    spec = parse_config(example("digits_mlp", data={"dataset": "npz", "path": str(path)})).data
    check_files(spec)
    assert source_files(spec) == {"d.npz": path}
    ds = load_dataset(spec, 0)
    assert (ds.shape, ds.bits, ds.frac, ds.num_classes) == (((1, 1, 64) if flat else (1, 8, 8)), 8, 8, 10)
    assert len(ds.test.y) == 297 and len(ds.train.y) + len(ds.val.y) == (1500 if val else 1200)
    assert len(ds.val.y) == (300 if val else round(0.15 * 1200))
    from sklearn.datasets import load_digits
    want = (load_digits().images[1500:] * 15).astype(np.int64).reshape(297, -1)
    assert np.array_equal(ds.test.x.reshape(297, -1), want)  # float / 255 gives back the bytes


def test_npz_trains_and_exports(tmp_path):
    """A short run on a user's .npz: trained, exported bit exact (torch == QONNX == reference)."""
    from codesign.frontend.export import export

    path = digits_npz(tmp_path / "d.npz", val=True)
    cfg = parse_config(example("digits_mlp", train__epochs=3, data={"dataset": "npz", "path": str(path)}))
    train(cfg, tmp_path / "run", quiet=True)
    export(tmp_path / "run")
    verify = json.loads((tmp_path / "run" / "export" / "verify.json").read_text())
    assert verify["samples"] == 297 and verify["mismatches"] == 0


def digits_folder(root: Path, split: bool = True, rgb: bool = False, per_class: int = 12) -> Path:
    """sklearn's digits (bytes 0..240) as PNG files: root/{train,test}/<class>/<i>.png, or root/<class>/."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images * 15).astype(np.uint8)
    for c in range(10):
        idx = np.flatnonzero(d.target == c)[:per_class]
        for j, i in enumerate(idx):
            where = root / (("train" if j < per_class * 3 // 4 else "test") if split else "") / f"c{c}"
            where.mkdir(parents=True, exist_ok=True)
            img = np.repeat(x[i][:, :, None], 3, axis=2) if rgb else x[i]
            Image.fromarray(img).save(where / f"{j}.png")
    return root


@pytest.mark.parametrize("split,rgb", [(True, False), (False, False), (True, True)])
def test_image_folder_data_set(tmp_path, split, rgb):
    """data.dataset folder: PNGs read back as their bytes on the grid p / 256, classes in folder order,
    train/ and test/ kept, an unsplit folder cut by the fractions, RGB as three channels."""
    from codesign.frontend.data import check_files, source_files

    root = digits_folder(tmp_path / "imgs", split=split, rgb=rgb)
    spec = parse_config(example("digits_mlp", data={"dataset": "folder", "path": str(root)})).data
    check_files(spec)
    assert len(source_files(spec)) == 120 and ("train/c3/0.png" in source_files(spec)) == split
    ds = load_dataset(spec, 0)
    assert (ds.shape, ds.bits, ds.frac, ds.num_classes) == (((3 if rgb else 1), 8, 8), 8, 8, 10)
    assert len(ds.train.y) + len(ds.val.y) + len(ds.test.y) == 120
    if split:
        assert len(ds.test.y) == 30 and sorted(set(ds.test.y.tolist())) == list(range(10))
    from sklearn.datasets import load_digits
    d = load_digits()
    first_c0 = (d.images[np.flatnonzero(d.target == 0)[0]] * 15).astype(np.int64)
    train = np.concatenate([ds.train.x, ds.val.x])
    assert any(np.array_equal(s[0], first_c0) for s in train)  # a PNG gives back its bytes
