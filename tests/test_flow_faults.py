"""The flow's results do not depend on where the run lives, on interruptions, or on how it got there.

- Two runs of `make demo`'s config in different folders are byte-identical outside RUN/timings.json.
- SIGTERM at ten points of a flow (one after the other, each rerun interrupted further on), then a
  rerun: the same bytes as the uninterrupted run.
- Editing the config, changing --device or --steps and rerunning gives what a clean run of the final
  command gives, redoing only the steps that depend on the change.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, assert_verified, example, write_config

CLI = [sys.executable, "-m", "codesign.cli"]
DEMO = EXAMPLES / "digits_mlp.yaml"  # what `make demo` runs
NOT_COMPARED = {"timings.json"}  # wall-clock figures: the one file two runs may differ in


def flow(cfg: Path, out: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    res = subprocess.run([*CLI, "flow", str(cfg), "--out", str(out), *args], cwd=cwd, capture_output=True,
                         text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under folder (its hidden state included) by relative path, timings.json left out."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            out[rel] = b"-> " + str(p.readlink()).encode()
        elif p.is_file() and rel not in NOT_COMPARED:
            out[rel] = p.read_bytes()
        elif p.is_dir():
            out[rel + "/"] = b""
    return out


def assert_same_run(a: Path, b: Path) -> None:
    ta, tb = tree(a), tree(b)
    assert sorted(ta) == sorted(tb), (sorted(set(ta) ^ set(tb)))
    differ = [rel for rel in ta if ta[rel] != tb[rel]]
    assert not differ, f"differ: {differ[:10]}"


def ran(res: subprocess.CompletedProcess) -> list[str]:
    """Steps a flow ran (its progress lines: '  <step> done (...)')."""
    return [ln.split()[0] for ln in res.stderr.splitlines() if ln.startswith("  ") and " done" in ln]


@pytest.fixture(scope="module")
def demo_run(demo_flow) -> Path:
    """`make demo`'s flow, uninterrupted (tests/conftest.py demo_flow, shared with test_flow)."""
    assert_verified(demo_flow.run)
    return demo_flow.run


def test_two_runs_in_different_folders_are_identical(demo_run, tmp_path):
    other = tmp_path / "elsewhere" / "deeper"
    other.mkdir(parents=True)
    flow(DEMO, Path("named_otherwise"), cwd=other)  # a relative --out in another folder
    assert_same_run(demo_run, other / "named_otherwise")


# (the step whose progress line is awaited, seconds after it) for each interruption, in flow order
KILL_POINTS = [(None, 2.0), ("train", 0.5), ("export", 0.0), ("calibrate", 0.2), ("dse", 0.0),
               ("evaluate", 0.5), ("estimate", 2.0), ("hls", 1.0), ("rtl", 3.0), ("sim", 4.0)]


def _flow_until_killed(out: Path, after: str | None, delay: float, cwd: Path) -> str:
    """Start the flow, SIGTERM it `delay` seconds after `after`'s progress line; its stderr."""
    proc = subprocess.Popen([*CLI, "flow", str(DEMO), "--out", str(out)], cwd=cwd, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    seen = []
    if after is not None:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("  ") and line.split()[0] == after:
                break
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=600)
    return "".join(seen) + (rest or "")


def test_sigterm_at_ten_points_then_rerun_equals_an_uninterrupted_run(demo_run, tmp_path):
    out = tmp_path / "run"
    for after, delay in KILL_POINTS:
        log = _flow_until_killed(out, after, delay, tmp_path)
        assert "Traceback" not in log, log[-3000:]
    final = flow(DEMO, out, cwd=tmp_path)
    assert "Traceback" not in final.stderr
    assert_same_run(demo_run, out)


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict[str, Path]:
    """Configs of a short digits MLP, before and after an edit of train.epochs."""
    base = tmp_path_factory.mktemp("quick")
    return {"before": write_config(base, example("digits_mlp", train__epochs=3), "before.yaml"),
            "after": write_config(base, example("digits_mlp", train__epochs=4), "after.yaml"), "base": base}


def _clean(quick: dict[str, Path], name: str, *args: str) -> Path:
    out = quick["base"] / f"clean-{name}"
    if not out.exists():
        flow(quick["after"], out, "--steps", "train..estimate", *args, cwd=quick["base"])
    return out


def test_edit_config_then_device_then_rerun_equals_clean_runs(quick, tmp_path):
    out = tmp_path / "run"
    flow(quick["before"], out, "--steps", "train..estimate", cwd=tmp_path)
    cfg = tmp_path / "cfg.yaml"
    shutil.copy(quick["after"], cfg)
    edited = flow(cfg, out, "--steps", "train..estimate", cwd=tmp_path)
    assert ran(edited)[0] == "train"  # a new epoch count retrains: every step after it sees new inputs
    assert_same_run(_clean(quick, "default"), out)
    moved = flow(cfg, out, "--steps", "train..estimate", "--device", "xczu3eg", cwd=tmp_path)
    assert ran(moved) == ["dse", "evaluate", "estimate"]  # the device is an input of the DSE, not of training
    assert_same_run(_clean(quick, "xczu3eg", "--device", "xczu3eg"), out)
    again = flow(cfg, out, "--steps", "train..estimate", "--device", "xczu3eg", cwd=tmp_path)
    assert ran(again) == [] and "nothing to do" in again.stdout


def test_partial_steps_then_the_rest_equals_a_clean_run(quick, tmp_path):
    out = tmp_path / "run"
    first = flow(quick["after"], out, "--steps", "train..export", cwd=tmp_path)
    assert ran(first) == ["train", "export"]
    rest = flow(quick["after"], out, "--steps", "train..estimate", cwd=tmp_path)
    assert ran(rest) == ["calibrate", "dse", "evaluate", "estimate"]
    assert_same_run(_clean(quick, "default"), out)


def test_a_hardware_edit_keeps_the_trained_model(quick, tmp_path):
    out = tmp_path / "run"
    flow(quick["after"], out, "--steps", "train..export", cwd=tmp_path)
    data = example("digits_mlp", train__epochs=4, hardware__buffer_depth=8)
    res = flow(write_config(tmp_path, data), out, "--steps", "train..export", cwd=tmp_path)
    assert ran(res) == ["export"]  # the buffer depth enters design.json, not the model
