"""codesign.store.runfolder on small steps: content stamps, atomic commits, crash recovery, the lock."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from codesign.store import runfolder, timings
from stage_ir.errors import StepFailed, UserError, VerificationFailed
from codesign.store.runfolder import RunLock, Step, execute, recover, staleness


RUNS: dict[str, int] = {}


def _copy_step(name: str = "copy", src: str = "in.txt", dst: str = "out/result.txt", **kw) -> Step:
    """Reads src, writes dst = src's text + the 'suffix' option; counts its runs in RUNS."""
    RUNS[name] = 0

    def action(run: Path, p: dict) -> str:
        RUNS[name] += 1
        out = run / dst
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text((run / src).read_text() + p.get("suffix", ""))
        timings.write_json(run / "out" / "t.json", {"value": 1, "seconds": 3.5}) if p.get("json") else None
        return out.read_text()

    writes = (dst, "out/t.json") if kw.pop("json", False) else (dst,)
    return Step(name, lambda run: [src], lambda run: {}, writes, action, **kw)


@pytest.fixture
def run(tmp_path) -> Path:
    r = tmp_path / "run"
    r.mkdir()
    (r / "in.txt").write_text("a")
    return r


def test_up_to_date_by_content_not_time(run):
    step = _copy_step()
    assert execute(run, step, {}).status == "ran"
    assert (run / "out" / "result.txt").read_text() == "a"
    assert execute(run, step, {}).status == "skipped" and RUNS["copy"] == 1
    os.utime(run / "in.txt", (time.time() + 100, time.time() + 100))  # newer, same bytes
    assert execute(run, step, {}).status == "skipped"
    (run / "in.txt").write_text("b")
    assert execute(run, step, {}).status == "ran" and (run / "out" / "result.txt").read_text() == "b"
    assert execute(run, step, {"suffix": "!"}).status == "ran"  # an option is an input
    assert execute(run, step, {"suffix": "!", "_private": 1}).status == "skipped"  # "_" keys are not
    assert execute(run, step, {"suffix": "!", "other": None}).status == "skipped"  # None is the default
    (run / "out" / "result.txt").write_text("edited by hand")
    assert staleness(run, step, {"suffix": "!"}) == "out/result.txt was changed since"
    assert execute(run, step, {"suffix": "!"}).status == "ran" and (run / "out" / "result.txt").read_text() == "b!"
    (run / "out" / "result.txt").unlink()
    assert staleness(run, step, {"suffix": "!"}) == "out/result.txt is missing"


def test_failure_leaves_the_previous_result(run):
    step = _copy_step()
    execute(run, step, {})

    def broken(r: Path, p: dict) -> None:
        (r / "out" / "result.txt").write_text("half")
        raise UserError(f"bad input in {r / 'in.txt'}")

    bad = Step("copy", step.reads, step.values, step.writes, broken)
    with pytest.raises(UserError) as err:
        execute(run, bad, {}, force=True)
    assert str(run / "in.txt") in str(err.value) and ".codesign" not in str(err.value)  # names RUN, not the scratch
    assert (run / "out" / "result.txt").read_text() == "a"
    assert execute(run, step, {}).status == "skipped"  # the old record still vouches for the old result
    assert not list((run / ".codesign").glob("tx/*"))


def test_verification_failure_keeps_its_report_outside_the_run(run):
    def failing(r: Path, p: dict) -> None:
        (r / "out" / "result.txt").write_text("mismatch report")
        raise VerificationFailed(f"3 of 9 samples mismatch; see {r / 'out' / 'result.txt'}")

    step = Step("check", lambda r: ["in.txt"], lambda r: {}, ("out/result.txt",), failing)
    with pytest.raises(VerificationFailed) as err:
        execute(run, step, {})
    kept = run / ".codesign" / "failed" / "check" / "out" / "result.txt"
    assert str(kept) in str(err.value) and kept.read_text() == "mismatch report"
    assert not (run / "out").exists() and runfolder.read_stamp(run, "check") is None


def test_undeclared_output_and_scratch_path_are_defects(run):
    def stray(r: Path, p: dict) -> None:
        (r / "elsewhere.txt").write_text("x")

    with pytest.raises(StepFailed, match="elsewhere.txt"):
        execute(run, Step("stray", lambda r: [], lambda r: {}, ("out.txt",), stray), {})

    def leaky(r: Path, p: dict) -> None:
        (r / "out.txt").write_text(f"built in {r.resolve()}")

    with pytest.raises(StepFailed, match="scratch path"):
        execute(run, Step("leaky", lambda r: [], lambda r: {}, ("out.txt",), leaky), {})
    assert not (run / "out.txt").exists() and not (run / "elsewhere.txt").exists()


def test_wall_clock_goes_to_timings_only(run):
    step = _copy_step(json=True)
    execute(run, step, {"json": True})
    assert json.loads((run / "out" / "t.json").read_text()) == {"value": 1}
    t = json.loads((run / "timings.json").read_text())["copy"]
    assert t["t.json.seconds"] == 3.5 and t["seconds"] >= 0


def test_stale_input_is_refused(run):
    first = _copy_step("first", "in.txt", "mid.txt")
    second = _copy_step("second", "mid.txt", "final.txt")
    registry = {"first": first, "second": second}
    execute(run, first, {}, registry=registry)
    execute(run, second, {}, registry=registry)
    (run / "in.txt").write_text("changed")
    with pytest.raises(UserError, match=r"mid.txt is stale: in.txt changed since `codesign first`"):
        execute(run, second, {}, force=True, registry=registry)
    (run / "mid.txt").write_text("hand-made")  # no step vouches for it now: the user's file is used
    assert execute(run, second, {}, force=True, registry=registry).status == "ran"


def test_replace_all_removes_what_the_step_did_not_write(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "old.json").write_text("{}")

    def make(r: Path, p: dict) -> None:
        (r / "model.pt").write_text("new")

    execute(run, Step("train", lambda r: [], lambda r: {}, ("model.pt",), make), {}, replace_all=True)
    assert sorted(p.name for p in run.iterdir()) == [".codesign", "model.pt", "timings.json"]


def test_a_failed_command_in_a_new_folder_leaves_no_folder(tmp_path):
    def boom(r: Path, p: dict) -> None:
        raise UserError("no")

    with pytest.raises(UserError):
        execute(tmp_path / "new", Step("x", lambda r: [], lambda r: {}, ("a",), boom), {})
    assert not (tmp_path / "new").exists()


CRASHER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from codesign.store import runfolder
    run, after = Path(sys.argv[1]), int(sys.argv[2])
    moves = [0]
    real = Path.rename
    def rename(self, target):
        if moves[0] == after:
            os._exit(9)  # killed in the middle of the commit
        moves[0] += 1
        return real(self, target)
    Path.rename = rename
    def make(r, p):
        for name in ("a.txt", "b.txt", "c.txt"):
            (r / name).write_text("new " + name)
    runfolder.execute(run, runfolder.Step("s", lambda r: [], lambda r: {}, ("a.txt", "b.txt", "c.txt"), make), {})
""")


@pytest.mark.parametrize("after", range(6))
def test_a_commit_killed_half_way_is_finished_by_the_next_command(run, after):
    for name in ("a.txt", "b.txt", "c.txt"):
        (run / name).write_text("old " + name)
    res = subprocess.run([sys.executable, "-c", CRASHER, str(run), str(after)], capture_output=True, text=True)
    assert res.returncode == 9, res.stderr
    with RunLock(run):  # any next command: it replays the journal
        pass
    assert [(run / n).read_text() for n in ("a.txt", "b.txt", "c.txt")] == ["new a.txt", "new b.txt", "new c.txt"]
    assert runfolder.read_stamp(run, "s") is not None
    assert sorted(p.name for p in (run / ".codesign").iterdir()) == ["lock", "steps"]


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from codesign.store.runfolder import RunLock
    with RunLock(Path(sys.argv[1]), command="codesign flow cfg.yaml --out run"):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_a_busy_run_folder_is_refused_in_one_line(run, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = subprocess.run([sys.executable, "-m", "codesign.cli", "evaluate", str(run)], capture_output=True,
                             text=True, cwd=tmp_path)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.returncode == 2 and len(lines) == 1, res.stderr
        assert "is busy" in lines[0] and f"pid {holder.pid}" in lines[0] and "codesign flow" in lines[0]
    finally:
        holder.kill()
        holder.wait()
    with RunLock(run):  # the holder's death released it
        pass
    assert (run / ".codesign" / "lock").read_bytes() == b""


def test_the_lock_is_reentrant_in_one_process(run):
    with RunLock(run):
        with RunLock(run):
            pass
        assert str(run.resolve()) in RunLock._held
    assert str(run.resolve()) not in RunLock._held


def test_recover_drops_an_interrupted_actions_scratch(run):
    tx = run / ".codesign" / "tx" / "rtl"
    tx.mkdir(parents=True)
    (tx / "half.v").write_text("module")
    recover(run)
    assert not (run / ".codesign" / "tx").exists()


def test_the_last_writer_vouches_for_a_shared_output(run):
    def writer(name: str, shared: bool) -> Step:
        def act(r: Path, p: dict) -> None:
            (r / "design.json").write_text(name)
        return Step(name, lambda r: ["in.txt"], lambda r: {}, ("design.json",), act,
                    shared=("design.json",) if shared else ())

    export, dse = writer("export", True), writer("dse", False)
    registry = {"export": export, "dse": dse}
    execute(run, export, {}, registry=registry)
    execute(run, dse, {}, registry=registry)
    assert "design.json" not in runfolder.read_stamp(run, "export")["outputs"]
    assert runfolder.producer(run, "design.json", registry) is dse
    execute(run, export, {}, force=True, registry=registry)  # rewrites it: dse's record no longer vouches
    assert runfolder.producer(run, "design.json", registry) is export
    assert staleness(run, dse, {}) == "design.json was changed since"


def test_the_same_bytes_again_are_no_write(run):
    step = _copy_step()
    execute(run, step, {})
    out = run / "out" / "result.txt"
    os.utime(out, ns=(1_000_000_000, 1_000_000_000))
    assert execute(run, step, {}, force=True).status == "ran"
    assert out.stat().st_mtime_ns == 1_000_000_000 and out.read_text() == "a"


def test_no_artifact_shape_requires_a_wall_clock_key():
    """Wall-clock figures live in RUN/timings.json only: a shape that required one would refuse every
    artifact the steps write."""
    from pydantic import BaseModel

    from codesign.store.artifacts import ARTIFACTS

    def required(shape: type[BaseModel], where: str) -> list[str]:
        found = []
        for name, field in shape.model_fields.items():
            if field.is_required() and name in timings.WALL_CLOCK_KEYS:
                found.append(f"{where}.{name}")
            for arg in getattr(field.annotation, "__args__", ()) + (field.annotation,):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    found += required(arg, f"{where}.{name}")
        return found

    assert [w for rel, (_, shape) in ARTIFACTS.items() if shape for w in required(shape, rel)] == []
