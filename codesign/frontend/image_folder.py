"""A data set as a folder of images: one sub-folder per class (PNG or JPEG), optionally split.

    DATA/train/<class>/*.png   DATA/test/<class>/*.png   [DATA/val/<class>/*.png]
    or DATA/<class>/*.png      (data.test_fraction and data.val_fraction cut the splits)

Classes are the sub-folder names in sorted order (labels 0..K-1), the same in every split. Pillow
reads the images (already installed with matplotlib, and it decodes both formats without a codec of
our own); they are taken as they are, never resized: all of one size, grayscale (one channel) when
every image is, else RGB (three).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from stage_ir.errors import UserError

SUFFIXES = (".png", ".jpg", ".jpeg")
FOLDER_FIX = "give a folder of class sub-folders of PNG/JPEG images (or train/ and test/ folders of them)"


def _classes(folder: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) < 2:
        raise UserError(f"{folder} holds {len(names)} class folder(s); a classifier needs two or more; {FOLDER_FIX}")
    return names


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def _read(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:  # Pillow's errors for damaged files
        raise UserError(f"cannot read image {path} ({type(err).__name__}); {FOLDER_FIX}") from None


def _split(folder: Path, classes: list[str]) -> tuple[list, np.ndarray]:
    own = _classes(folder)
    if own != classes:
        raise UserError(f"{folder} has classes {own} but the train split {classes}; give every split "
                        "the same class folders")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = _images(folder / name)
        if not files:
            raise UserError(f"{folder / name} holds no PNG/JPEG image; every class needs some")
        images += [_read(p) for p in files]
        labels += [label] * len(files)
    return images, np.array(labels, dtype=np.int64)


def read_image_folder(folder: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """{split: (uint8 [N, C, H, W], labels)} for the splits the folder has (train and test, or one
    unsplit "all"), and the class names."""
    if not folder.is_dir():
        raise UserError(f"data.path {folder} is not a folder; {FOLDER_FIX}")
    split_dirs = {s: folder / s for s in ("train", "val", "test") if (folder / s).is_dir()}
    if split_dirs and not {"train", "test"} <= set(split_dirs):
        raise UserError(f"{folder} has {', '.join(sorted(split_dirs))}/ but not both train/ and test/; {FOLDER_FIX}")
    split_dirs = split_dirs or {"all": folder}
    classes = _classes(split_dirs.get("train", folder))
    raw = {s: _split(d, classes) for s, d in split_dirs.items()}
    every = [im for images, _ in raw.values() for im in images]
    sizes = sorted({im.size for im in every})
    if len(sizes) > 1:
        raise UserError(f"{folder} holds images of {len(sizes)} sizes ({', '.join(f'{w}x{h}' for w, h in sizes[:3])}"
                        f"{', ...' if len(sizes) > 3 else ''}); resize them to one size")
    mode = "L" if all(im.mode in ("L", "1") for im in every) else "RGB"
    out = {}
    for s, (images, labels) in raw.items():
        x = np.stack([np.asarray(im.convert(mode), dtype=np.uint8) for im in images])
        out[s] = (x[:, None] if mode == "L" else x.transpose(0, 3, 1, 2), labels)
    return out, classes
