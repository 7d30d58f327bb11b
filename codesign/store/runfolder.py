"""A run folder stays consistent: one writer at a time, steps up to date by content, atomic commits.

Every command that writes into RUN goes through `execute`:

1. `RunLock` takes an exclusive `flock` on RUN/.codesign/lock (a second command gets one line naming
   the holder) and first finishes any commit a killed process left half done (`recover`).
2. The step's action runs on an overlay of RUN (RUN/.codesign/tx/<step>/): every existing entry is a
   symlink to RUN's, except the step's declared outputs, which the action creates fresh. Nothing in RUN
   changes while the action runs, so a failure or a kill leaves the previous result.
3. On success the outputs move into RUN through a journal (written first, replayed by `recover` after
   a crash), then the step's stamp RUN/.codesign/steps/<step>.json records the content hashes of what it
   read (files, config sections, options) and wrote. A step is up to date when every one of those hashes
   is unchanged; file times play no part.

Wall-clock figures go to RUN/timings.json (codesign.store.timings), the one file two identical runs differ in.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from codesign.store import timings
from codesign.store.digests import digest, value_digest
from stage_ir.errors import StepFailed, UserError, VerificationFailed
from codesign.store.scratch import FAILED_DIR, keep_failed

STATE_DIR = ".codesign"
LOCK_FILE = "lock"
STAMP_DIR = "steps"
TX_DIR = "tx"
TRASH_DIR = "trash"
JOURNAL_PREFIX = "journal-"
TIMINGS_FILE = "timings.json"


def state_dir(run: Path) -> Path:
    return Path(run) / STATE_DIR


# --------------------------------------------------------------------------- steps and stamps


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a run: what it reads and writes, and the action that does it.

    `reads(run)` lists run-relative files/folders whose content the result depends on (absent ones
    count as absent); `values(run)` gives its other inputs by value (config sections, data files);
    the options it runs with are the third kind of input. `writes` are run-relative outputs; `shared`
    ones are rewritten by later steps too, so only the last writer's record vouches for them.
    `action(run, params)` returns the result the caller prints, `describe` makes one line of it."""

    name: str
    reads: Callable[[Path], list[str]]
    values: Callable[[Path], dict[str, Any]]
    writes: tuple[str, ...]
    action: Callable[[Path, dict[str, Any]], Any]
    shared: tuple[str, ...] = ()
    describe: Callable[[Any], str] = lambda result: ""
    missing_tool: Callable[[], str | None] = lambda: None
    stale_ok: bool = False  # reads stale inputs itself and says so (the report leaves them out)


def stamp_path(run: Path, name: str) -> Path:
    return state_dir(run) / STAMP_DIR / f"{name}.json"


def read_stamp(run: Path, name: str) -> dict | None:
    try:
        data = json.loads(stamp_path(run, name).read_text())
        return data if isinstance(data, dict) and {"inputs", "outputs"} <= data.keys() else None
    except (OSError, ValueError):
        return None


def options(params: dict[str, Any]) -> dict[str, Any]:
    """The options a stamp records: None means "the default", "_" keys are not options."""
    return {k: v for k, v in sorted(params.items()) if not k.startswith("_") and v is not None}


def input_record(run: Path, step: Step, params: dict[str, Any]) -> dict[str, Any]:
    """What the step's result depends on, as hashes."""
    return {"files": {rel: digest(run / rel) for rel in step.reads(run)},
            "values": {k: value_digest(v) for k, v in sorted(step.values(run).items())},
            "options": value_digest(options(params))}


def input_change(run: Path, step: Step, stamp: dict, params: dict[str, Any] | None = None) -> str | None:
    """The first input that differs from the stamp's record (options only when `params` is given)."""
    rec = stamp["inputs"]
    files_now = {rel: digest(run / rel) for rel in step.reads(run)}
    if set(files_now) != set(rec["files"]):
        return "its inputs changed"
    for rel, h in files_now.items():
        if rec["files"][rel] != h:
            return f"{rel} changed"
    values_now = {k: value_digest(v) for k, v in step.values(run).items()}
    for key in sorted(set(values_now) | set(rec["values"])):
        if rec["values"].get(key) != values_now.get(key):
            return f"{key} changed"
    if params is not None and rec["options"] != value_digest(options(params)):
        return "its options changed"
    return None


def staleness(run: Path, step: Step, params: dict[str, Any] | None) -> str | None:
    """Why the step is not up to date (None when it is): no record, a changed input or option
    (options only when `params` is given), or an output of its own that is missing or was changed since."""
    stamp = read_stamp(run, step.name)
    if stamp is None:
        return "never ran"
    change = input_change(run, step, stamp, params)
    if change:
        return change
    for rel in step.writes:
        if rel not in step.shared and digest(run / rel) != stamp["outputs"].get(rel):
            return f"{rel} was changed since" if (run / rel).exists() else f"{rel} is missing"
    return None


def producer(run: Path, rel: str, registry: dict[str, Step]) -> Step | None:
    """The step whose recorded output `rel` is now (the last writer), if any."""
    for name, step in registry.items():
        stamp = read_stamp(run, name)
        if stamp is None:
            continue
        for out, h in stamp["outputs"].items():
            if (rel == out or rel.startswith(out + "/")) and h is not None and digest(run / out) == h:
                return step
    return None


def stale_inputs(run: Path, rels: list[str], registry: dict[str, Step], reader: Step | None = None
                 ) -> list[tuple[str, Step, str]]:
    """(input, the step that made it, what changed since) for every input that a step whose inputs
    changed since made (RTL older than design.json, say)."""
    out = []
    for rel in rels:
        if not (run / rel).exists():
            continue
        maker = producer(run, rel, registry)
        if maker is None or maker is reader:
            continue
        change = input_change(run, maker, read_stamp(run, maker.name))
        if change:
            out.append((rel, maker, change))
    return out


def stale_input(run: Path, step: Step, registry: dict[str, Step]) -> str | None:
    """A one-line reason when something the step reads is stale: a command never builds on a stale result."""
    for rel, maker, change in stale_inputs(run, step.reads(run), registry, step)[:1]:
        return (f"{run / rel} is stale: {change} since `codesign {maker.name}` wrote it; rerun "
                f"`codesign {maker.name} {run}` (or `codesign flow`) first")
    return None


# --------------------------------------------------------------------------- the lock


class RunLock:
    """An exclusive lock on a run folder, re-entrant within one process (a flow holds it for its steps)."""

    _held: dict[str, tuple[int, int]] = {}  # resolved run -> (fd, depth)

    def __init__(self, run: Path, command: str | None = None) -> None:
        self.run = Path(run)
        self.command = command or " ".join(["codesign", *sys.argv[1:]])
        self.created = False

    def __enter__(self) -> "RunLock":
        key = str(self.run.resolve())
        if key in self._held:
            fd, depth = self._held[key]
            self._held[key] = (fd, depth + 1)
            return self
        self.created = not self.run.exists()
        try:
            state_dir(self.run).mkdir(parents=True, exist_ok=True)
            fd = os.open(state_dir(self.run) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:
            raise UserError(f"cannot write into {self.run} (permission denied); give a run folder you may write to, "
                            f"or fix its permissions") from None
        except OSError as err:
            raise UserError(f"cannot use {self.run} as a run folder ({err.strerror}); give another --out or RUN") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another codesign command"
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise UserError(f"{self.run} is busy: {holder} is writing into it; wait for it to finish "
                                f"or use another run folder") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({self.command})".encode(), 0)
        self._held[key] = (fd, 1)
        try:
            _probe_writable(self.run)
            recover(self.run)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        key = str(self.run.resolve())
        fd, depth = self._held[key]
        if depth > 1:
            self._held[key] = (fd, depth - 1)
            return
        del self._held[key]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # an idle lock file is empty: two finished runs hold the same bytes
        os.close(fd)
        if self.created and exc[0] is not None:
            self._remove_new_folder()

    def _remove_new_folder(self) -> None:
        """A command that created the run folder and failed before any result leaves no folder behind
        (the flow's first step only copies the config in)."""
        entries = [p.name for p in self.run.iterdir() if p.name != STATE_DIR] if self.run.is_dir() else []
        if entries in ([], ["config.yaml"]):
            shutil.rmtree(self.run, ignore_errors=True)


def _probe_writable(run: Path) -> None:
    """Commits rename into the run folder: find out now, not half way through one, if that is refused
    (a read-only mount, an immutable folder, another user's run)."""
    probe = run / f".codesign-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write into {run} ({err.strerror.lower()}); give a run folder you may write to, "
                        f"or copy this one elsewhere") from None


# --------------------------------------------------------------------------- overlay and commit


def _links_to(target: Path, link: Path) -> None:
    link.symlink_to(os.path.relpath(target, link.parent))


def build_overlay(run: Path, tx: Path, writes: tuple[str, ...]) -> None:
    """tx mirrors run by symlinks, except declared outputs (absent: the action makes them) and the
    folders that hold outputs (real folders, so the action writes inside tx and never into run)."""
    outputs = {Path(w).parts for w in writes}
    ancestors = {parts[:i] for parts in outputs for i in range(1, len(parts))}

    def mirror(src: Path, dst: Path, prefix: tuple[str, ...]) -> None:
        dst.mkdir(parents=True, exist_ok=True)
        for entry in sorted(src.iterdir()) if src.is_dir() else []:
            parts = (*prefix, entry.name)
            if not prefix and entry.name == STATE_DIR or parts in outputs:
                continue
            if parts in ancestors and entry.is_dir() and not entry.is_symlink():
                mirror(entry, dst / entry.name, parts)
            else:
                _links_to(entry, dst / entry.name)
        for parts in ancestors:  # output folders that do not exist yet
            if parts[:-1] == prefix:
                (dst / parts[-1]).mkdir(exist_ok=True)

    mirror(run, tx, ())
    # the step records, read-only, for actions that report on the run's provenance (the report)
    (tx / STATE_DIR).mkdir()
    _links_to(state_dir(run) / STAMP_DIR, tx / STATE_DIR / STAMP_DIR)


def _undeclared(tx: Path, writes: tuple[str, ...]) -> list[str]:
    """Files the action wrote outside its declared outputs (a defect of the step's declaration)."""
    outputs = [Path(w) for w in writes]
    bad = []
    for p in tx.rglob("*"):
        rel = p.relative_to(tx)
        if rel.parts[0] == STATE_DIR or p.is_symlink() or p.is_dir() or any(rel == o or o in rel.parents for o in outputs):
            continue
        bad.append(rel.as_posix())
    return sorted(bad)


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _apply(run: Path, journal: dict) -> None:
    """Carry out a commit journal; each operation checks what is already done, so a replay is safe."""
    state = state_dir(run)
    tx, trash = state / TX_DIR / journal["step"], state / TRASH_DIR / journal["step"]
    stamp_path(run, journal["step"]).unlink(missing_ok=True)

    def discard(rel: str) -> None:
        old = run / rel
        if old.exists() or old.is_symlink():
            (trash / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(trash / rel, ignore_errors=True)
            old.rename(trash / rel)

    for rel in journal["replace"]:
        new = tx / rel
        if new.exists():  # not yet moved
            discard(rel)
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            new.rename(run / rel)
    for rel in journal["remove"]:
        discard(rel)
    if journal["stamp"] is not None:
        _write_json_atomic(stamp_path(run, journal["step"]), journal["stamp"])
    _disown(run, journal["step"], [*journal["replace"], *journal["remove"]])
    if journal.get("timings"):
        timings.merge_file(run / TIMINGS_FILE, journal["step"], journal["timings"])
    for folder in (trash, tx):
        _drop_scratch(folder)


def _drop_scratch(folder: Path) -> None:
    """Remove a scratch folder and its parent once empty: finished and failed runs alike hold the tree
    they held before (a failed step leaves no empty .codesign/tx behind)."""
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()


def _disown(run: Path, step: str, written: list[str]) -> None:
    """The last writer of a file vouches for it: other steps' records forget what this commit rewrote
    (a step whose own output was rewritten is then out of date; a shared one just has a new owner)."""
    for path in sorted((state_dir(run) / STAMP_DIR).glob("*.json")):
        if path.stem == step or (data := read_stamp(run, path.stem)) is None:
            continue
        lost = [rel for rel in written if rel in data["outputs"]]
        if lost:
            for rel in lost:
                del data["outputs"][rel]
            _write_json_atomic(path, data)


def recover(run: Path) -> None:
    """Finish commits a killed command left half done; drop scratch folders of interrupted actions."""
    state = state_dir(run)
    for journal in sorted(state.glob(JOURNAL_PREFIX + "*.json")):
        try:
            data = json.loads(journal.read_text())
        except ValueError:  # torn before its rename: the commit never started
            journal.unlink()
            continue
        _apply(run, data)
        journal.unlink()
    for folder in (state / TX_DIR, state / TRASH_DIR):
        shutil.rmtree(folder, ignore_errors=True)
    for tmp in state.rglob("*.tmp"):
        tmp.unlink(missing_ok=True)


def commit(run: Path, step: str, replace: list[str], remove: list[str], stamp: dict | None,
           step_timings: dict | None) -> None:
    """Move the overlay's outputs into run, atomically as a whole (journal first, replayed on recovery)."""
    journal = {"step": step, "replace": replace, "remove": remove, "stamp": stamp, "timings": step_timings}
    path = state_dir(run) / f"{JOURNAL_PREFIX}{step}.json"
    _write_json_atomic(path, journal)
    _apply(run, journal)
    path.unlink()


def _scrub(text: str, tx: Path, run: Path) -> str:
    """Messages name the run folder, not the scratch overlay the action saw."""
    for form in (str(tx.resolve()), str(tx)):
        text = text.replace(form, str(run))
    return text


@dataclasses.dataclass
class Outcome:
    name: str
    status: str  # ran | skipped | unavailable
    seconds: float
    detail: str
    result: Any = None


def execute(run: Path, step: Step, params: dict[str, Any] | None = None, *, force: bool = False,
            record: bool = True, replace_all: bool = False, registry: dict[str, Step] | None = None) -> Outcome:
    """Run `step` on `run` unless it is up to date (always with `force`); see the module docstring.

    `record=False` for ad-hoc results (no stamp: nothing depends on them); `replace_all` empties the run
    folder of everything the step does not write (a forced `train` starts a new run); `registry` (every
    step by name) lets the step refuse inputs that a stale step made."""
    run = Path(run)
    params = dict(params or {})
    reason = step.missing_tool()
    if reason:
        return Outcome(step.name, "unavailable", 0.0, reason)
    with RunLock(run):
        if record and not force and staleness(run, step, params) is None:
            return Outcome(step.name, "skipped", 0.0, "up to date")
        stale = None if step.stale_ok else stale_input(run, step, registry or {})
        if stale:
            raise UserError(stale)
        tx = state_dir(run) / TX_DIR / step.name
        shutil.rmtree(tx, ignore_errors=True)
        build_overlay(run, tx, step.writes)
        started = time.perf_counter()
        try:
            with timings.collect() as spent:
                result = step.action(tx, params)
        except VerificationFailed as err:
            # an action that kept its own failed outputs (export's scratch) names them: keep just those
            own = tx / FAILED_DIR / step.name
            dest = keep_failed(own if own.is_dir() else tx, run, step.name)
            _drop_scratch(tx)
            raise VerificationFailed(_scrub(_scrub(str(err), own, dest), tx, dest)) from None
        except UserError as err:
            _drop_scratch(tx)
            raise UserError(_scrub(str(err), tx, run)) from None
        except BaseException:
            _drop_scratch(tx)
            raise
        seconds = round(time.perf_counter() - started, 2)
        extra = _undeclared(tx, step.writes)
        if extra:
            _drop_scratch(tx)
            raise StepFailed(f"step '{step.name}' wrote {extra[0]}, which it does not declare (a codesign defect)")
        leaked = _leaks(tx, step.writes)
        if leaked:
            _drop_scratch(tx)
            raise StepFailed(f"step '{step.name}' embedded its scratch path in {leaked} (a codesign defect)")
        stamp = None
        if record:  # inputs are read after the action: train writes the config.yaml it depends on
            stamp = {"step": step.name, "inputs": input_record(tx, step, params),
                     "outputs": {rel: digest(tx / rel) for rel in step.writes}}
        produced = [w for w in step.writes if (tx / w).exists() and not (tx / w).is_symlink()]
        # the same bytes again are no write: the file keeps its time and the step that vouches for it
        made = [w for w in produced if digest(tx / w) != digest(run / w)]
        # an output the step did not make this time must not outlive it (shared ones belong to others too);
        # replace_all: nor anything else of the old run
        gone = [w for w in step.writes if w not in produced and w not in step.shared]
        if replace_all:
            gone += sorted(p.name for p in run.iterdir() if p.name not in (STATE_DIR, *produced))
        commit(run, step.name, made, gone, stamp, {"seconds": seconds, **spent})
        detail = _scrub(step.describe(result), tx, run)
        return Outcome(step.name, "ran", seconds, detail, result)


def _leaks(tx: Path, writes: tuple[str, ...]) -> str | None:
    """The first output file that holds the overlay's path (artifacts refer to the run by relative paths)."""
    needles = [str(tx.resolve()).encode(), str(tx).encode(), f"{STATE_DIR}/{TX_DIR}/".encode()]
    for rel in writes:
        path = tx / rel
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        for f in files:
            if f.stat().st_size > 64 << 20:
                continue
            data = f.read_bytes()
            if any(n in data for n in needles):
                return f.relative_to(tx).as_posix()
    return None


@contextlib.contextmanager
def locked(run: Path) -> Iterator[Path]:
    """Hold the run's lock for a sequence of steps (a flow)."""
    with RunLock(run):
        yield Path(run)
