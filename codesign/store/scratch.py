"""Write a folder completely or not at all: build it next to its destination, then move it into place."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def replace_dir(final: Path) -> Iterator[Path]:
    """Yield a scratch folder beside `final`; on success it replaces `final`, on failure it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


FAILED_DIR = ".codesign/failed"


def keep_failed(scratch: Path, run: Path, step: str) -> Path:
    """Move the scratch folder of a step whose verification failed to RUN/.codesign/failed/<step> (for
    debugging; an earlier failure of the step is replaced) and return its new path."""
    dest = Path(run) / FAILED_DIR / step
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    Path(scratch).rename(dest)
    return dest
