"""Content hashes of files, folders and JSON-able values: what "up to date" means for a run's steps
(codesign.store.runfolder) and their config inputs (codesign.commands.steps)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


_file_cache: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, memoised per process on (path, size, mtime) for large data sets."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _file_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _file_cache[key] = h.hexdigest()
    return _file_cache[key]


def digest(path: Path) -> str | None:
    """Content hash of a file or a folder (relative names and bytes of everything under it); None if absent."""
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(path).as_posix().encode() + b"\0" + file_digest(p).encode())
    return "dir:" + h.hexdigest()


def value_digest(value: Any) -> str:
    """Hash of a JSON-able value (config sections, options), independent of key order."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
