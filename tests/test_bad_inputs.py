"""Bad inputs and faults against the CLI, table-driven (issue 14).

Every case runs the real `codesign` command in a subprocess and checks what a user sees: the exit
status (2 for the user's mistakes, 1 for verification failures and internal errors), exactly one line
on stderr, no traceback, and nothing written: a run folder that existed has the same content hash
afterwards, and an output folder that did not exist still does not.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import shutil
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

from tests.conftest import example, write_config
from tests.test_config import run_cli

# internal state a command may leave behind on failure: a failing verification keeps its scratch
# folder there for debugging (its one line names it); the lock file is the lock itself (empty when
# idle), made by the first command on a folder
IGNORED = (".codesign/failed", ".codesign/lock")


def tree_hash(folder: Path) -> str | None:
    """Content hash of a folder: relative paths and bytes of its files and symlinks (None if it does not exist)."""
    if not folder.exists():
        return None
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_dir() and not p.is_symlink() or any(rel == i or rel.startswith(i + "/") for i in IGNORED):
            continue
        h.update(rel.encode() + b"\0")
        if p.is_file() and not p.is_symlink():
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def assert_one_line(res, code: int, needle: str) -> str:
    """Exit status `code`, exactly one non-empty stderr line, no traceback, `needle` in that line."""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == code, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert len(lines) == 1, res.stderr[-3000:]
    assert needle.lower() in lines[0].lower(), (needle, lines[0])
    return lines[0]


@dataclass(frozen=True)
class Case:
    """One bad input: `args` may hold {cfg}, {run}, {out} and {tmp}; `setup` prepares tmp (and tmp/run)."""

    args: tuple[str, ...]
    needle: str
    setup: Callable[[Path], object] | None = None
    code: int = 2
    run: str | None = None  # name of a session fixture whose run folder is copied to tmp/run first
    config: dict | None = field(default=None, hash=False)  # written to tmp/cfg.yaml (default: digits MLP)


def run_case(case: Case, tmp: Path, request: pytest.FixtureRequest) -> None:
    write_config(tmp, case.config if case.config is not None else example("digits_mlp", train__epochs=1))
    run = tmp / "run"
    if case.run:
        shutil.copytree(request.getfixturevalue(case.run), run, symlinks=True)
    undo = case.setup(tmp) if case.setup else None  # a setup may return a clean-up (e.g. chattr -i)
    try:
        before = {name: tree_hash(tmp / name) for name in ("run", "out")}
        args = [a.format(cfg=tmp / "cfg.yaml", run=run, out=tmp / "out", tmp=tmp) for a in case.args]
        res = run_cli(*args, cwd=tmp)
        assert_one_line(res, case.code, case.needle)
        for name, digest in before.items():
            assert tree_hash(tmp / name) == digest, f"{name} changed"
    finally:
        if callable(undo):
            undo()


# ------------------------------------------------------------------ config and data set files

IDX_STEMS = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
             "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}


def idx_bytes(values: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 00 00 08 <rank>, big-endian dimensions, the bytes."""
    return b"\0\0\x08" + bytes([values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape) + \
        values.astype(np.uint8).tobytes()


def write_idx_folder(folder: Path, gz: bool = True, train: int = 200, test: int = 50, **arrays: np.ndarray) -> Path:
    """A small MNIST-shaped IDX folder (random pixels, labels 0..9); `arrays` replace any of IDX_STEMS' files."""
    rng = np.random.default_rng(0)
    data = {"train_x": rng.integers(0, 256, (train, 28, 28)), "train_y": rng.integers(0, 10, train),
            "test_x": rng.integers(0, 256, (test, 28, 28)), "test_y": rng.integers(0, 10, test), **arrays}
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_STEMS.items():
        blob = idx_bytes(data[key])
        # mtime=0: the same bytes every time
        (folder / f"{stem}.gz").write_bytes(gzip.compress(blob, mtime=0)) if gz else (folder / stem).write_bytes(blob)
    return folder


def _idx(edit: Callable[[Path], object] | None = None, gz: bool = True, **arrays: np.ndarray) -> Callable[[Path], None]:
    """A setup writing tmp/idx (the config's data.path), then `edit` on the train images file."""
    def setup(tmp: Path) -> None:
        folder = write_idx_folder(tmp / "idx", gz=gz, **arrays)
        if edit:
            edit(folder / (IDX_STEMS["train_x"] + (".gz" if gz else "")))
    return setup


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_middle(path: Path) -> None:
    """Damage inside the compressed stream: the gzip header and size trailer still look right."""
    raw = bytearray(path.read_bytes())
    for i in range(len(raw) // 2, len(raw) // 2 + 64):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())


def _data(dataset: str = "fashion-mnist", path: str = "idx") -> dict:
    return example("digits_mlp", train__epochs=1, data={"dataset": dataset, "path": path})


def _npz(**arrays: np.ndarray | None) -> Callable[[Path], None]:
    """A setup writing tmp/d.npz: 40 train and 10 test 8x8 uint8 samples of classes 0..2; `arrays` replace
    (None: leave out) any of them or add x_val / y_val."""
    def setup(tmp: Path) -> None:
        rng = np.random.default_rng(2)
        parts = {"x_train": rng.integers(0, 256, (40, 8, 8)).astype(np.uint8), "y_train": np.arange(40) % 3,
                 "x_test": rng.integers(0, 256, (10, 8, 8)).astype(np.uint8), "y_test": np.arange(10) % 3, **arrays}
        np.savez(tmp / "d.npz", **{k: v for k, v in parts.items() if v is not None})
    return setup


def _png(path: Path, size: int) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((size, size), np.uint8)).save(path)


def _folder(edit: Callable[[Path], object], split: bool = True) -> Callable[[Path], None]:
    """A setup writing tmp/imgs (3 classes of 8x8 PNGs, in train/ and test/ unless not `split`), then `edit` on it."""
    def setup(tmp: Path) -> None:
        root = tmp / "imgs"
        for where in (("train", "test") if split else ("",)):
            for c in range(3):
                folder = root / where / f"c{c}"
                folder.mkdir(parents=True)
                for i in range(3):
                    _png(folder / f"{i}.png", 8)
        edit(root)
    return setup


def _text(content: str | bytes) -> Callable[[Path], None]:
    """A setup replacing tmp/cfg.yaml by these exact bytes."""
    def setup(tmp: Path) -> None:
        raw = content.encode() if isinstance(content, str) else content
        (tmp / "cfg.yaml").write_bytes(raw)
    return setup


def _dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def _model_file(write: Callable[[Path], object]) -> Callable[[Path], None]:
    """A setup that rewrites tmp/run/model.pt (`write` gets its path). The session runs are made by
    calling train() directly; a run made by `codesign train` also holds the lock's state folder, so the
    setup takes the lock once, as that command did, and the case then sees any other write."""
    from codesign.store.runfolder import RunLock

    def setup(tmp: Path) -> None:
        with RunLock(tmp / "run"):
            pass
        write(tmp / "run" / "model.pt")
    return setup


def _blob_edit(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    import torch

    def write(path: Path) -> None:
        blob = torch.load(path, weights_only=True)
        edit(blob)
        torch.save(blob, path)
    return _model_file(write)


def _narrow_first_layer(blob: dict) -> None:
    """Another architecture under the same config: the first linear layer has 32 outputs, not 64."""
    key = next(k for k, v in blob["state_dict"].items() if k.endswith(".weight") and v.dim() == 2)
    blob["state_dict"][key] = blob["state_dict"][key][:32]


def _torch_save(obj: object) -> Callable[[Path], None]:
    import torch

    return _model_file(lambda path: torch.save(obj, path))


def _set(config: dict, **changes: object) -> dict:
    for key, value in changes.items():
        node = config
        *parents, last = key.split("__")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value
    return config


def _cfg(**changes: object) -> dict:
    """The default case config (digits MLP, one epoch) with dotted changes; list items by index."""
    return _set(example("digits_mlp", train__epochs=1), **changes)


def _ic_only(**changes: object) -> dict:
    return _cfg(train__mode="ic_only", train__backbone_from="run", train__backbone_epochs=1, **changes)


def _devices(content: str | bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / "parts.yaml").write_bytes(content.encode() if isinstance(content, str) else content)
    return setup


TRAIN = ("train", "{cfg}", "--out", "{out}", "--quiet")
FLOW = ("flow", "{cfg}", "--out", "{out}")
EXPORT = ("export", "{run}")
DEVICE_FILE = ("estimate", "{run}", "--device-file", "{tmp}/parts.yaml", "--device", "myboard")
NOT_A_MODEL = "is not a codesign model"
PART = "myboard: {lut: 1000, ff: 2000, dsp: 10, bram36: 5}\n"

CONFIG_CASES: dict[str, Case] = {
    # the config file itself
    "config not UTF-8": Case(TRAIN, "is not UTF-8", _text(_dump(_cfg()).replace("digits_mlp", "d\xe9").encode("latin-1"))),
    "config is binary": Case(TRAIN, "is not UTF-8", _text(bytes(range(256)) * 8)),
    "config holds a NUL": Case(TRAIN, "not allowed in YAML", _text("name: a\0b\n")),
    "key given twice": Case(TRAIN, "key 'seed' given twice", _text(_dump(_cfg()) + "seed: 3\n")),
    "nested key given twice": Case(FLOW, "key 'epochs' given twice",
                                   _text(_dump(_cfg()).replace("  epochs: 1\n", "  epochs: 1\n  epochs: 2\n"))),
    # numbers
    "seed -1": Case(TRAIN, "seed", config=_cfg(seed=-1)),
    "seed 2**64": Case(TRAIN, "seed", config=_cfg(seed=2**64)),
    "lr .inf": Case(TRAIN, "train.lr: input should be a finite number", _text(_dump(_cfg()).replace("lr: 0.01", "lr: .inf"))),
    "lr .nan": Case(FLOW, "train.lr: input should be a finite number", _text(_dump(_cfg()).replace("lr: 0.01", "lr: .nan"))),
    "exit weight inf": Case(TRAIN, "model.exits.0.weight", config=_cfg(model__exits__0__weight=float("inf"))),
    "lr that diverges": Case(TRAIN, "training diverged", config=_cfg(train__lr=1e30)),
    "synthetic shape with a 0": Case(TRAIN, "data.synthetic.shape: give [C, H, W]",
                                     config=_cfg(data={"dataset": "synthetic", "synthetic": {"shape": [0, 4, 4]}})),
    "synthetic shape of rank 2": Case(TRAIN, "[C, H, W]",
                                      config=_cfg(data={"dataset": "synthetic", "synthetic": {"shape": [4, 4]}})),
    # the network and its names
    "classifier empty": Case(TRAIN, "model.classifier", config=_cfg(model__classifier=[])),
    "exit head empty": Case(TRAIN, "model.exits.0.head", config=_cfg(model__exits__0__head=[])),
    "name empty": Case(TRAIN, "cannot name generated HDL", config=_cfg(name="")),
    "name with spaces and a semicolon": Case(TRAIN, "e.g. 'my_run_rm'", config=_cfg(name="my run; rm")),
    "name with a slash": Case(FLOW, "cannot name generated HDL", config=_cfg(name="runs/a")),
    "name starting with a digit": Case(TRAIN, "e.g. 'run_1st'", config=_cfg(name="1st")),
    # the device
    "unknown hardware.device": Case(TRAIN, "unknown device 'xc9nope'; use one of xc7a35t",
                                    config=_cfg(hardware__device="xc9nope")),
    "unknown hardware.device, flow": Case(FLOW, "hardware.device: unknown device", config=_cfg(hardware__device="zynq")),
    # what data.path and backbone_from may be given with
    "data.path with digits": Case(TRAIN, "path is read only by the mnist, fashion-mnist, npz and folder data sets",
                                  config=_cfg(data__path="/usr/share/datasets")),
    "backbone_from without ic_only": Case(TRAIN, "backbone_from is used only with mode ic_only",
                                          config=_cfg(train__backbone_from="run")),
    # IDX files: the header checks fail before training, the rest when the data set is read
    "IDX folder missing a file": Case(TRAIN, "no t10k-labels-idx1-ubyte", lambda tmp: (
        write_idx_folder(tmp / "idx"), (tmp / "idx" / "t10k-labels-idx1-ubyte.gz").unlink()), config=_data()),
    "IDX .gz is garbage": Case(TRAIN, "cannot read", _idx(_garbage), config=_data()),
    "IDX file is garbage": Case(FLOW, "is not an unsigned-byte IDX file", _idx(_garbage, gz=False), config=_data()),
    "IDX .gz truncated": Case(TRAIN, "truncated or damaged", _idx(_cut), config=_data()),
    "IDX file truncated": Case(TRAIN, "truncated or damaged", _idx(_cut, gz=False), config=_data("mnist")),
    "IDX .gz damaged inside": Case(TRAIN, "cannot read", _idx(_flip_middle), config=_data()),
    "IDX label count mismatch": Case(TRAIN, "holds 199 labels but",
                                     _idx(train_y=np.zeros(199, dtype=np.uint8)), config=_data()),
    "IDX label beyond the classes": Case(TRAIN, "holds label 12",
                                         _idx(train_y=np.full(200, 12, dtype=np.uint8)), config=_data()),
    "IDX labels of rank 2": Case(TRAIN, "of 1 dimension(s)", _idx(train_y=np.zeros((200, 2), dtype=np.uint8)),
                                 config=_data()),
    "IDX images of two sizes": Case(TRAIN, "give files of one data set",
                                    _idx(test_x=np.zeros((50, 32, 32), dtype=np.uint8)), config=_data()),
    "MNIST pickle not gzip": Case(TRAIN, "is not a gzip file", lambda tmp: (tmp / "m.pkl.gz").write_bytes(b"hello"),
                                  config=_data("mnist", "m.pkl.gz")),
    "MNIST pickle of something else": Case(TRAIN, "is not the MNIST pickle", lambda tmp: (tmp / "m.pkl.gz").write_bytes(
        gzip.compress(pickle.dumps({"x": [1, 2]}), mtime=0)), config=_data("mnist", "m.pkl.gz")),
    # a user's .npz (data.dataset npz): every check fails before training, in one line
    "npz path missing": Case(TRAIN, "dataset npz reads the .npz file data.path names",
                             config=example("digits_mlp", train__epochs=1, data={"dataset": "npz"})),
    "npz file not there": Case(TRAIN, "d.npz is not a file", config=_data("npz", "d.npz")),
    "npz not a zip": Case(TRAIN, "cannot read", lambda tmp: (tmp / "d.npz").write_text("x,y\n1,2\n"),
                          config=_data("npz", "d.npz")),
    "npz without y_test": Case(TRAIN, "has no y_test", _npz(y_test=None), config=_data("npz", "d.npz")),
    "npz with x_val but no y_val": Case(TRAIN, "has no y_val", _npz(x_val=np.zeros((5, 8, 8), np.uint8)),
                                        config=_data("npz", "d.npz")),
    "npz x of rank 5": Case(TRAIN, "x_train has shape [40, 1, 1, 8, 8]", _npz(x_train=np.zeros((40, 1, 1, 8, 8), np.uint8)),
                            config=_data("npz", "d.npz")),
    "npz x int32": Case(TRAIN, "x_test is int32, not uint8", _npz(x_test=np.zeros((10, 8, 8), np.int32)),
                        config=_data("npz", "d.npz")),
    "npz float beyond 1": Case(TRAIN, "floats outside [0, 1]", _npz(x_test=np.full((10, 8, 8), 2.0)),
                               config=_data("npz", "d.npz")),
    "npz samples of two shapes": Case(TRAIN, "samples of different shapes", _npz(x_test=np.zeros((10, 7, 7), np.uint8)),
                                      config=_data("npz", "d.npz")),
    "npz label count mismatch": Case(TRAIN, "y_train holds 39 labels for 40 samples",
                                     _npz(y_train=np.arange(39) % 3), config=_data("npz", "d.npz")),
    "npz negative label": Case(TRAIN, "y_test holds label -1", _npz(y_test=np.full(10, -1)), config=_data("npz", "d.npz")),
    "npz float labels": Case(TRAIN, "y_train is float64", _npz(y_train=np.zeros(40)), config=_data("npz", "d.npz")),
    "npz test label never trained": Case(TRAIN, "y_train holds no sample of class 3, 4, 5, 6, 7 of 0..7",
                                         _npz(y_test=np.full(10, 7)), config=_data("npz", "d.npz")),
    "npz one class": Case(TRAIN, "one class only", _npz(y_train=np.zeros(40, np.int64), y_test=np.zeros(10, np.int64)),
                          config=_data("npz", "d.npz")),
    "npz empty test split": Case(TRAIN, "x_test holds no samples", _npz(x_test=np.zeros((0, 8, 8), np.uint8),
                                                                         y_test=np.zeros(0, np.int64)),
                                 config=_data("npz", "d.npz")),
    # a user's image folder (data.dataset folder)
    "folder missing": Case(TRAIN, "imgs is not a folder", config=_data("folder", "imgs")),
    "folder of one class": Case(TRAIN, "holds 1 class folder(s)", _folder(lambda r: [shutil.rmtree(d) for d in
                                sorted(r.iterdir())[1:]], split=False), config=_data("folder", "imgs")),
    "folder with train but no test": Case(TRAIN, "not both train/ and test/", _folder(lambda r: shutil.rmtree(r / "test")),
                                          config=_data("folder", "imgs")),
    "folder splits of other classes": Case(TRAIN, "give every split the same class folders",
                                           _folder(lambda r: shutil.rmtree(r / "test" / "c2")), config=_data("folder", "imgs")),
    "folder class without images": Case(TRAIN, "holds no PNG/JPEG image", _folder(lambda r: [
        f.unlink() for f in (r / "train" / "c1").iterdir()]), config=_data("folder", "imgs")),
    "folder images of two sizes": Case(TRAIN, "images of 2 sizes", _folder(lambda r: _png(r / "train" / "c0" / "0.png", 9)),
                                       config=_data("folder", "imgs")),
    "folder damaged image": Case(TRAIN, "cannot read image", _folder(lambda r: (r / "test" / "c1" / "x.png").write_bytes(
        b"\x89PNG\r\n\x1a\n garbage")), config=_data("folder", "imgs")),
    # model.pt of a run (export reads it) and of backbone_from (train reads it)
    "model.pt empty": Case(EXPORT, "model.pt is not a codesign model (empty file)", _model_file(lambda p: p.write_bytes(b"")),
                           run="mlp_run"),
    "model.pt truncated": Case(EXPORT, NOT_A_MODEL, _model_file(_cut), run="mlp_run"),
    "model.pt not a torch file": Case(EXPORT, NOT_A_MODEL, _model_file(lambda p: p.write_text("weights\n")), run="mlp_run"),
    "model.pt of a list": Case(EXPORT, "no state_dict and config", _torch_save([1, 2, 3]), run="mlp_run"),
    "model.pt with a foreign object": Case(EXPORT, "rerun `codesign train`", _torch_save({"x": Fraction(1, 3)}),
                                           run="mlp_run"),
    "model.pt of another config": Case(EXPORT, "was trained with other settings",
                                       _blob_edit(lambda b: b["config"].update(seed=5)), run="mlp_run"),
    "model.pt of another architecture": Case(EXPORT, "does not hold the network of", _blob_edit(_narrow_first_layer),
                                             run="mlp_run"),
    "backbone_from model.pt garbage": Case(TRAIN, "train.backbone_from:", _model_file(_garbage), run="mlp_run",
                                           config=_ic_only()),
    "backbone_from model.pt empty, flow": Case(FLOW, "(empty file)", _model_file(lambda p: p.write_bytes(b"")),
                                               run="mlp_run", config=_ic_only()),
    "backbone_from without model.pt": Case(TRAIN, "model.pt not found", _model_file(Path.unlink), run="mlp_run",
                                           config=_ic_only()),
    "backbone_from another backbone": Case(TRAIN, "has a different backbone", run="mlp_run",
                                           config=_ic_only(model__backbone__1__out_features=32)),
    # --device-file
    "device file binary": Case(DEVICE_FILE, "is not UTF-8", _devices(bytes(range(128, 256)) * 4)),
    "device file not YAML": Case(DEVICE_FILE, "malformed YAML", _devices("myboard: {lut: 1000\n")),
    "device file a list": Case(DEVICE_FILE, "holds no devices", _devices("- myboard\n")),
    "device file part lacks totals": Case(DEVICE_FILE, "lacks ff, dsp, bram36", _devices("myboard: {lut: 1000}\n")),
    "device file negative total": Case(DEVICE_FILE, "lut", _devices(PART.replace("1000", "-1000"))),
    "device file unknown key": Case(DEVICE_FILE, "luts", _devices(PART.replace("lut:", "luts: 1, lut:"))),
    "device file part twice": Case(DEVICE_FILE, "key 'myboard' given twice", _devices(PART + PART)),
}


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config(name, tmp_path, request):
    run_case(CONFIG_CASES[name], tmp_path, request)


# ------------------------------------------------------------------ run-folder artifacts and options

def _write(rel: str, content: str | bytes) -> Callable[[Path], None]:
    """setup: RUN/rel replaced by `content`."""
    def setup(tmp: Path) -> None:
        path = tmp / "run" / rel
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def _truncate(rel: str) -> Callable[[Path], None]:
    """setup: RUN/rel cut in the middle, as by a killed writer."""
    def setup(tmp: Path) -> None:
        path = tmp / "run" / rel
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    return setup


def _edit_json(rel: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / "run" / rel
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return setup


def _layer(data: dict, name: str) -> dict:
    return next(l for s in data["stages"] for l in s["layers"] + s["head"] if l["name"] == name)


def _edit_array(layer: str, part: str, edit: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    """setup: the weight ("w") or bias ("b") array of a layer replaced by edit(array)."""
    def setup(tmp: Path) -> None:
        path = tmp / "run" / "export" / "weights" / f"{layer}_{part}.npy"
        np.save(path, edit(np.load(path)))
    return setup


def _set(arr: np.ndarray, index: tuple, value: int) -> np.ndarray:
    arr = arr.astype(np.int64)
    arr[index] = value
    return arr


def _trace(content: str | bytes) -> Callable[[Path], None]:
    """setup: tmp/trace.txt holding `content`."""
    def setup(tmp: Path) -> None:
        (tmp / "trace.txt").write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


RERUN_EXPORT = "rerun `codesign export"
BINARY = bytes(range(256))  # not UTF-8 text

RUN_CASES: dict[str, Case] = {
    # the stage IR and its arrays: refused when loaded
    "design.json is a JSON list": Case(("rtl", "{run}"), "JSON array", _write("design.json", "[1, 2]"), run="mlp_rtl_run"),
    "design.json truncated": Case(("estimate", "{run}"), "not valid JSON", _truncate("design.json"), run="mlp_rtl_run"),
    "design.json stages not a list": Case(("estimate", "{run}"), "stages",
                                          _edit_json("design.json", lambda d: d.update(stages="two")), run="mlp_rtl_run"),
    "design.json binary": Case(("dse", "{run}"), "UTF-8", _write("design.json", BINARY), run="mlp_rtl_run"),
    "weight outside w_bits (rtl --verify)": Case(("rtl", "{run}", "--verify"), "weight 100",
                                                 _edit_array("s0_l1_dense", "w", lambda a: _set(a, (0, 0), 100)),
                                                 run="mlp_rtl_run"),
    "weight outside w_bits (hls --csim)": Case(("hls", "{run}", "--csim"), "weight 100",
                                               _edit_array("s0_l1_dense", "w", lambda a: _set(a, (0, 0), 100)),
                                               run="mlp_rtl_run"),
    "weight -8 in 4 bits (narrow range)": Case(("calibrate", "{run}"), "[-7, 7]",
                                               _edit_array("s1_l0_dense", "w", lambda a: _set(a, (3, 5), -8)),
                                               run="mlp_run"),
    "weight array of the wrong shape": Case(("calibrate", "{run}"), "not [64, 64]",
                                            _edit_array("s0_l1_dense", "w", lambda a: a[:, :63]), run="mlp_run"),
    "weight array transposed": Case(("rtl", "{run}"), "not [10, 64]",
                                    _edit_array("s0_head_l0_dense", "w", lambda a: a.T), run="mlp_rtl_run"),
    "bias array of the wrong shape": Case(("calibrate", "{run}"), "bias has shape",
                                          _edit_array("s1_l1_dense", "b", lambda a: a[:, None]), run="mlp_run"),
    "float weights": Case(("calibrate", "{run}"), "not integers",
                          _edit_array("s0_l1_dense", "w", lambda a: a.astype(np.float32)), run="mlp_run"),
    "weights not a .npy file": Case(("calibrate", "{run}"), "not a valid .npy",
                                    _write("export/weights/s0_l1_dense_w.npy", b"not numpy"), run="mlp_run"),
    "weights file missing": Case(("calibrate", "{run}"), "is missing",
                                 lambda tmp: (tmp / "run/export/weights/s0_l1_dense_w.npy").unlink(), run="mlp_run"),
    "bias beyond 16 bits": Case(("rtl", "{run}"), "bias 40000",
                                _edit_array("s1_l0_dense", "b", lambda a: _set(a, (0,), 40000)), run="mlp_rtl_run"),
    "acc_bits too small for the weights": Case(("rtl", "{run}"), "acc_bits 10",
                                               _edit_json("design.json", lambda d: _layer(d, "s0_l1_dense").update(
                                                   acc_bits=10)), run="mlp_rtl_run"),
    "threshold outside its port": Case(("rtl", "{run}"), "outside",
                                       _edit_json("design.json", lambda d: d["policy"].update(thresholds=[99999])),
                                       run="mlp_rtl_run"),
    "one threshold too many": Case(("sim", "{run}"), "2 thresholds",
                                   _edit_json("design.json", lambda d: d["policy"].update(thresholds=[300, 300])),
                                   run="mlp_rtl_run"),
    "early exit without a buffer depth": Case(("estimate", "{run}"), "give no buffer_depth", _edit_json(
        "design.json", lambda d: d["stages"][0].update(buffer_depth=None)), run="mlp_rtl_run"),
    "policy tables malformed": Case(("hls", "{run}"), "malformed", _edit_json(
        "design.json", lambda d: d["policy"].update(tables={"policy": "max_softmax", "num_exits": 2})),
        run="mlp_rtl_run"),
    # the run's other JSON artifacts: one reader, one line naming the file and the step
    "policy.json truncated": Case(("evaluate", "{run}"), "policy.json is not valid JSON", _truncate("policy.json"),
                                  run="mlp_rtl_run"),
    "policy.json wrong shape": Case(("dse", "{run}"), "policy.json is not valid",
                                    _write("policy.json", '{"kind": "margin"}'), run="mlp_rtl_run"),
    "policy.json threshold out of range": Case(("evaluate", "{run}"), "rerun `codesign calibrate",
                                               _edit_json("policy.json", lambda d: d.update(thresholds=[-5])),
                                               run="mlp_rtl_run"),
    "eval.json corrupt (report)": Case(("report", "{run}"), "eval.json is not valid JSON",
                                       _write("eval.json", '{"exits": ['), run="mlp_run"),
    "eval.json wrong shape (summary)": Case(("summary", "{run}"), "rerun `codesign evaluate",
                                            _write("eval.json", '{"exits": 3}'), run="mlp_run"),
    "eval.json binary (estimate)": Case(("estimate", "{run}"), "eval.json is not valid JSON",
                                        _write("eval.json", BINARY), run="mlp_rtl_run"),
    "eval.json fraction a string (estimate)": Case(("estimate", "{run}"), "exit_fraction", _write(
        "eval.json", json.dumps({"policy": "margin", "samples": 1, "overall_accuracy": 1, "final_accuracy": 1,
                                 "mac_fraction": 1, "overthinking": [], "float_integer_agreement": {"exit_index": 1},
                                 "exits": [{"index": 0, "exit_fraction": "0.5", "accuracy_alone": 1,
                                            "accuracy_of_exited": None, "threshold": 3}]})), run="mlp_rtl_run"),
    "dse.json corrupt (report)": Case(("report", "{run}"), "dse.json is not valid JSON", _write("dse.json", "{]"),
                                      run="mlp_run"),
    "dse.json wrong shape (report)": Case(("report", "{run}"), "rerun `codesign dse",
                                           _write("dse.json", '{"chosen": {}}'), run="mlp_run"),
    "train.json corrupt (report)": Case(("report", "{run}"), "train.json is not valid JSON", _truncate("train.json"),
                                        run="mlp_run"),
    "train.json a list (summary)": Case(("summary", "{run}"), "train.json is not valid: a JSON array",
                                        _write("train.json", "[]"), run="mlp_run"),
    "estimate.json wrong shape (report)": Case(("report", "{run}"), "estimate.json is not valid",
                                               _write("estimate.json", '{"devices": 1}'), run="mlp_run"),
    "csim.json wrong shape (report)": Case(("report", "{run}"), "rerun `codesign hls",
                                           lambda tmp: (tmp / "run/hls").mkdir() or _write("hls/csim.json", "{}")(tmp),
                                           run="mlp_run"),
    "export verify.json corrupt (summary)": Case(("summary", "{run}"), "export/verify.json is not valid JSON",
                                                 _truncate("export/verify.json"), run="mlp_run"),
    "rtl manifest corrupt (sim)": Case(("sim", "{run}"), "manifest.json is not valid JSON",
                                       _truncate("rtl/manifest.json"), run="mlp_rtl_run"),
    "summary of a missing folder": Case(("summary", "{tmp}/no_such_run"), "not a folder"),
    # options: click's ranges, checked before anything runs
    "dse --burst-length 0": Case(("dse", "{run}", "--burst-length", "0"), "--burst-length", run="mlp_rtl_run"),
    "estimate --burst-length 0.5": Case(("estimate", "{run}", "--burst-length", "0.5"), "--burst-length",
                                        run="mlp_rtl_run"),
    "dse --budget 0": Case(("dse", "{run}", "--budget", "0"), "--budget", run="mlp_rtl_run"),
    "dse --device ''": Case(("dse", "{run}", "--device", ""), "--device", run="mlp_rtl_run"),
    "estimate --device ''": Case(("estimate", "{run}", "--device", ""), "--device", run="mlp_rtl_run"),
    "hls --part ' '": Case(("hls", "{run}", "--part", " "), "--part", run="mlp_rtl_run"),
    "sim --samples -5": Case(("sim", "{run}", "--samples", "-5"), "--samples", run="mlp_rtl_run"),
    "sim --samples 0": Case(("sim", "{run}", "--samples", "0"), "--samples", run="mlp_rtl_run"),
    "sim --samples 1e9": Case(("sim", "{run}", "--samples", "1000000000"), "fit in memory", run="mlp_rtl_run"),
    "rtl --verify --samples 0": Case(("rtl", "{run}", "--verify", "--samples", "0"), "--samples", run="mlp_rtl_run"),
    "sweep of 0 points": Case(("sim", "{run}", "--sweep", "iid:0.1..0.9/0"), "0 points", run="mlp_rtl_run"),
    "sweep of 1 point": Case(("sim", "{run}", "--sweep", "iid:0.1..0.9/1"), "2 to", run="mlp_rtl_run"),
    "sweep range not numbers": Case(("sim", "{run}", "--sweep", "iid:low..high"), "not a range", run="mlp_rtl_run"),
    "sweep with a bad later point": Case(("sim", "{run}", "--sweep", "iid:0.5;iid:2"), "iid:2", run="mlp_rtl_run"),
    "sweep of no specs": Case(("sim", "{run}", "--sweep", ";;"), "no traffic spec", run="mlp_rtl_run"),
    # trace files
    "trace file binary": Case(("sim", "{run}", "--traffic", "trace:{tmp}/trace.txt"), "not a text file",
                              _trace(BINARY), run="mlp_rtl_run"),
    "trace file empty": Case(("sim", "{run}", "--traffic", "trace:{tmp}/trace.txt"), "empty", _trace(""),
                             run="mlp_rtl_run"),
    "trace exit index out of range": Case(("sim", "{run}", "--traffic", "trace:{tmp}/trace.txt"), "exit index 7",
                                          _trace("0\n1\n7\n"), run="mlp_rtl_run"),
    "trace negative exit index": Case(("sim", "{run}", "--traffic", "trace:{tmp}/trace.txt"), "exit index -1",
                                      _trace("[0, -1]"), run="mlp_rtl_run"),
    "trace of fractions": Case(("sim", "{run}", "--traffic", "trace:{tmp}/trace.txt"), "must hold integers",
                               _trace("0 1.5 1"), run="mlp_rtl_run"),
    "trace JSON of lists": Case(("sim", "{run}", "--traffic", "trace:{tmp}/trace.txt"), "must hold integers",
                                _trace("[[0], [1]]"), run="mlp_rtl_run"),
    "trace file missing": Case(("sim", "{run}", "--traffic", "trace:{tmp}/none.txt"), "not found", run="mlp_rtl_run"),
}


@pytest.mark.parametrize("name", sorted(RUN_CASES))
def test_bad_run_input(name, tmp_path, request):
    run_case(RUN_CASES[name], tmp_path, request)


# ------------------------------------------------------------------ verification failures
# A failing verification exits 1 and commits nothing into the run; its report (what a user debugs
# from) stays with the step's other outputs in RUN/.codesign/failed/<step>, named by its one line.

def _copy(run: Path, tmp: Path) -> Path:
    shutil.copytree(run, tmp / "run", symlinks=True)
    return tmp / "run"


def _failed_report(line: str, run: Path, step: str, rel: str) -> Path:
    """The report a failed verification names: kept with the step's other outputs in
    RUN/.codesign/failed/<step>, while the run itself holds no result of the failed step."""
    path = Path(line.rsplit("report ", 1)[1])
    assert path == run / ".codesign" / "failed" / step / rel, line
    assert not (run / rel).exists()
    return path


def test_hls_csim_mismatch_exits_1(mlp_rtl_run, tmp_path):
    """Weights permuted in the IR after export (still in range, same accumulator bounds): the reference follows
    the IR, hls4ml builds from the QONNX files, so the C simulation must disagree and the step must fail."""
    run = _copy(mlp_rtl_run, tmp_path)
    _edit_array("s0_head_l0_dense", "w", lambda a: a[:, ::-1])(tmp_path)
    res = run_cli("hls", str(run), "--csim", cwd=tmp_path)
    line = assert_one_line(res, 1, "HLS C simulation")
    report = json.loads(_failed_report(line, run, "hls", "hls/csim.json").read_text())
    assert report["mismatches"] > 0
    assert f"{report['mismatches']} of {report['samples']} samples" in line
    assert f"first: {report['mismatched_samples'][0]}," in line


def test_sim_scoreboard_catches_an_edited_rom(mlp_rtl_run, tmp_path):
    """One bias of exit 0's head edited in the generated ROM file after `codesign rtl`: the classes may not
    change, the logits do, and the scoreboard compares them."""
    run = _copy(mlp_rtl_run, tmp_path)
    rom = run / "rtl" / "s0_head_l0_dense_b.hex"
    words = rom.read_text().split()
    bits = 4 * len(words[0])
    words[0] = f"{(int(words[0], 16) + 1) % (1 << bits):0{len(words[0])}x}"
    rom.write_text("".join(w + "\n" for w in words))
    res = run_cli("sim", str(run), "--samples", "20", cwd=tmp_path)
    line = assert_one_line(res, 1, "scoreboard under data")
    report = json.loads(_failed_report(line, run, "sim-data", "sim/data.json").read_text())
    assert report["scoreboard"] == {"lost": 0, "duplicated": 0, "altered": 20}
    assert "20 of 20 samples" in line


# ------------------------------------------------------------------ flow, locks and the run folder

def _hold_lock(tmp: Path) -> Callable[[], None]:
    """Another command holds the run's lock while the case's command runs."""
    import subprocess
    import sys

    code = ("import sys, time\nfrom pathlib import Path\nfrom codesign.store.runfolder import RunLock\n"
            "with RunLock(Path(sys.argv[1]), command='codesign flow cfg.yaml --out run'):\n"
            "    print('locked', flush=True)\n    time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp / "run")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return lambda: (holder.kill(), holder.wait())


def _read_only(tmp: Path) -> Callable[[], None]:
    """An immutable run folder (root may write anywhere chmod allows; chattr +i stops even root)."""
    import subprocess

    subprocess.run(["chattr", "+i", str(tmp / "run")], check=True)
    return lambda: subprocess.run(["chattr", "-i", str(tmp / "run")], check=True)


def _cli(*args: str) -> Callable[[Path], None]:
    """A setup that runs a codesign command on tmp/run (real steps, so their records exist)."""
    def setup(tmp: Path) -> None:
        res = run_cli(*[a.format(run=tmp / "run") for a in args], cwd=tmp)
        assert res.returncode == 0, res.stderr
    return setup


def _edit_config(**changes: object) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        import yaml

        path = tmp / "run" / "config.yaml"
        data = yaml.safe_load(path.read_text())
        for key, value in changes.items():
            *section, name = key.split("__")
            (data[section[0]] if section else data)[name] = value
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return setup


def _no_exits() -> dict:
    data = example("digits_mlp", train__epochs=1)
    data["model"]["exits"] = []
    return data


FLOW_CASES: dict[str, Case] = {
    "steps run backwards": Case(("flow", "{cfg}", "--out", "{out}", "--steps", "export..train"), "backwards"),
    "unknown step": Case(("flow", "{cfg}", "--out", "{out}", "--steps", "train,fly"), "'fly'"),
    "unknown step in a range": Case(("flow", "{cfg}", "--out", "{out}", "--steps", "train..fly"), "'fly'"),
    "flow without an early exit": Case(("flow", "{cfg}", "--out", "{out}"), "model.exits is empty", config=_no_exits()),
    "flow --device unknown": Case(("flow", "{cfg}", "--out", "{out}", "--device", "xc9z999"), "unknown device"),
    "flow --device empty": Case(("flow", "{cfg}", "--out", "{out}", "--device", ""), "--device is empty"),
    "busy run folder": Case(("evaluate", "{run}"), "is busy", _hold_lock, run="mlp_run"),
    "busy run folder, flow": Case(("flow", "{cfg}", "--out", "{run}"), "is busy", _hold_lock, run="mlp_run"),
    "read-only run folder": Case(("calibrate", "{run}"), "cannot write into", _read_only, run="mlp_run"),
    "model.pt older than the config": Case(("export", "{run}"), "model.pt is stale",
                                           _edit_config(train__epochs=5), run="flow_run"),
    "rtl older than design.json": Case(("sim", "{run}", "--samples", "10"), "rtl is stale",
                                       _cli("calibrate", "{run}", "--thresholds", "600"), run="flow_run"),
    "report on stale results": Case(("report", "{run}"), "is stale", _edit_config(seed=1), run="flow_run"),
}


@pytest.mark.parametrize("name", sorted(FLOW_CASES))
def test_bad_flow_input(name, tmp_path, request):
    run_case(FLOW_CASES[name], tmp_path, request)
