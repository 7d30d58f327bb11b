"""`codesign sweep`: axes expand and validate, points run as Ray tasks, survive a killed worker, rerun does nothing."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from stage_ir.errors import UserError
from codesign.sweeps.sweep import load_sweep
from tests.conftest import EXAMPLES, write_config
from tests.test_config import CLI, run_cli

TINY = {
    "name": "tiny", "seed": 0, "data": {"dataset": "synthetic"},
    "model": {"backbone": [{"type": "flatten"}, {"type": "linear", "out_features": 16}, {"type": "relu"},
                           {"type": "linear", "out_features": 16}, {"type": "relu"}],
              "exits": [{"after": 2}]},
    "train": {"epochs": 2},
}


def write_sweep(tmp: Path, axes: dict, **extra) -> Path:
    write_config(tmp, TINY, "base.yaml")
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "axes": axes, "steps": "train,export,calibrate,evaluate", **extra}))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """One local two-core Ray cluster for the module: starting Ray costs seconds."""
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    ray.shutdown()


# --- expansion and bad input (no Ray needed) --------------------------------------------------


def test_grid_range_and_random_expansion(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, {"model.exits[0].after": [2, 4], "quant.weight_bits": {"start": 2, "stop": 8, "step": 3}}), tmp_path / "out")
    assert [p.axes for p in sweep.points] == [
        {"model.exits[0].after": a, "quant.weight_bits": b} for a in (2, 4) for b in (2, 5, 8)]
    assert sweep.points[0].config["model"]["exits"][0]["after"] == 2 and sweep.points[4].config["quant"]["weight_bits"] == 5
    assert len({p.key for p in sweep.points}) == 6 and sweep.points[0].steps == ("train", "export", "calibrate", "evaluate")
    again = load_sweep(tmp_path / "sweep.yaml", tmp_path / "out")
    assert [p.key for p in again.points] == [p.key for p in sweep.points]  # keys are stable across reruns
    rnd = write_sweep(tmp_path, {"train.lr": {"start": 0.01, "stop": 0.1, "step": 0.01}, "seed": [0, 1, 2]},
                      sample="random", samples=5, seed=7)
    a, b = load_sweep(rnd, tmp_path / "o"), load_sweep(rnd, tmp_path / "o")
    assert len(a.points) == 5 and [p.axes for p in a.points] == [p.axes for p in b.points]
    assert all(0.01 <= p.axes["train.lr"] <= 0.1 for p in a.points)


BAD = {
    "unknown axis key": ({"train.epoch": [1, 2]}, "train.epoch"),
    "index past the exits": ({"model.exits[3].after": [2]}, "model.exits[3]"),
    "empty axis": ({"quant.weight_bits": []}, "empty"),
    "empty range": ({"quant.weight_bits": {"start": 6, "stop": 2}}, "empty"),
    "invalid value": ({"model.exits[0].after": [2, 4], "quant.weight_bits": [4, 12]}, "sweep point 1 (quant.weight_bits=12)"),
    "exit on an accumulator": ({"model.exits[0].after": [2, 3]}, "sweep point 1"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sweep_is_one_line_and_writes_nothing(tmp_path, case):
    axes, needle = BAD[case]
    res = run_cli("sweep", str(write_sweep(tmp_path, axes)), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.needs("ray")
def test_unreachable_cluster(tmp_path):
    port = _free_port()  # nobody listens on it
    res = run_cli("sweep", str(write_sweep(tmp_path, {"seed": [0]})), "--out", str(tmp_path / "out"),
                  "--address", f"127.0.0.1:{port}", cwd=tmp_path)
    assert res.returncode == 2 and "cannot reach the Ray cluster" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_without_ray_says_how_to_install(tmp_path):
    sweep = write_sweep(tmp_path, {"seed": [0]})
    code = ("import sys; sys.modules['ray'] = None; from codesign.cli import main; "
            f"sys.argv = ['codesign', 'sweep', {str(sweep)!r}, '--out', {str(tmp_path / 'out')!r}]; main()")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "pip install '.[cluster]'" in res.stderr and "ray[default]" in res.stderr
    assert not (tmp_path / "out").exists()


# --- on a local Ray cluster -------------------------------------------------------------------


def _kill_first_worker(points: Path, killed: dict, stop: threading.Event) -> None:
    """SIGKILL the worker of the first point that starts (its pid is in attempts.json), once."""
    while not stop.is_set():
        for f in points.glob("*/attempts.json"):
            try:
                info = json.loads(f.read_text())
            except ValueError:
                continue
            os.kill(info["pid"], signal.SIGKILL)
            killed["key"] = f.parent.name
            return
        time.sleep(0.02)


@pytest.mark.needs("ray")
def test_killed_worker_is_retried_and_rerun_does_nothing(tmp_path, ray_cluster):
    from codesign.sweeps.sweep import run_sweep, sweep_command

    sweep, out = write_sweep(tmp_path, {"seed": {"start": 0, "stop": 2}}, retries=2), tmp_path / "out"
    killed, stop = {}, threading.Event()
    killer = threading.Thread(target=_kill_first_worker, args=(out / "points", killed, stop), daemon=True)
    killer.start()
    try:
        summary = run_sweep(sweep, out)
    finally:
        stop.set()
    assert summary["done"] == 3 and summary["failed"] == 0 and killed
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["done"] * 3
    by_key = {r["key"]: r for r in rows}
    assert by_key[killed["key"]]["attempts"] >= 2
    assert all(r["attempts"] == 1 for k, r in by_key.items() if k != killed["key"])
    assert all(r["accuracy"] is not None and len(r["exit_fractions"]) == 2 for r in rows)
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["point", "key", "seed"] and {"status", "attempts", "accuracy", "lut", "error"} <= set(header)
    assert (out / "pareto.png").stat().st_size > 1000

    mtimes = {p: p.stat().st_mtime_ns for p in (out / "points").rglob("*") if p.is_file()}
    again = sweep_command(sweep, out, None, None)
    assert again["ran"] == 0 and "all 3 points already done" in again["message"]
    assert {p: p.stat().st_mtime_ns for p in (out / "points").rglob("*") if p.is_file()} == mtimes


@pytest.mark.needs("ray")
def test_failing_step_is_retried_and_recorded(tmp_path, ray_cluster):
    from codesign.sweeps.sweep import run_sweep

    sweep = write_sweep(tmp_path, {"policy.accuracy_delta": [-50.0]}, steps="train..calibrate", retries=1)
    summary = run_sweep(sweep, tmp_path / "out")
    assert summary["failed"] == 1
    row = json.loads((tmp_path / "out" / "results.json").read_text())["rows"][0]
    assert row["status"] == "failed" and row["attempts"] == 2 and row["error_step"] == "calibrate"
    assert "best reachable" in row["error"] and not (Path(row["run"]) / "done.json").exists()
    assert "calibrate" in (tmp_path / "out" / "results.csv").read_text()


@pytest.mark.needs("ray")
def test_interrupt_cancels_and_rerun_resumes(tmp_path, ray_cluster):
    from codesign.sweeps.sweep import run_sweep

    sweep, out = write_sweep(tmp_path, {"seed": [0, 1]}, steps="train..calibrate"), tmp_path / "out"

    def interrupt_on_second_start(kind: str, row: dict) -> None:
        if kind == "started" and row["index"] == 1:
            raise KeyboardInterrupt  # what Ctrl-C does while the second point is in flight

    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, out, max_parallel=1, on_event=interrupt_on_second_start)
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["done", "cancelled"]
    summary = run_sweep(sweep, out)
    assert summary == {**summary, "ran": 1, "skipped": 1, "done": 2}


# --- on a cluster started by `ray start --head`, as a user's would be --------------------------

RAY_CLI = Path(sys.executable).with_name("ray")


def _user_env(home: Path, **extra: str) -> dict:
    """This shell's environment without Ray's variables, HOME a test folder (Ray's token lives in ~/.ray)."""
    import matplotlib

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # matplotlib keeps its font cache under HOME: a fresh HOME would rebuild it in every process
    return {**env, "HOME": str(home), "MPLCONFIGDIR": matplotlib.get_cachedir(), **extra}


@contextmanager
def ray_head(tmp: Path, env: dict) -> Iterator[str]:
    """`ray start --head` on 127.0.0.1 with two CPUs; yields its address and always stops it, by pid.

    Not `ray stop --force`: that kills every Ray process on the machine, other people's included.
    --block keeps the head in the foreground and stops what it started on SIGTERM; its own session
    (start_new_session) and temp dir find any straggler.
    """
    port = _free_port()
    # a short temp dir of its own: Ray's socket paths are length-limited, and the default /tmp/ray
    # would keep a ray_current_cluster that a later ray.init() elsewhere on this machine tries to join
    temp = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))
    log = tmp / "ray_head.log"
    with open(log, "w") as out:
        head = subprocess.Popen([str(RAY_CLI), "start", "--head", "--block", f"--port={port}",
                                 "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false",
                                 "--disable-usage-stats", f"--temp-dir={temp}"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None and time.monotonic() < deadline, f"ray start --head failed:\n{log.read_text()}"
            time.sleep(0.3)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        _kill_leftovers(head.pid, temp)
        shutil.rmtree(temp, ignore_errors=True)


def _kill_leftovers(pgid: int, temp: Path) -> None:
    import psutil  # ships with ray

    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for proc in psutil.process_iter(["pid", "cmdline"]):  # workers in sessions of their own
        if str(temp) in " ".join(proc.info["cmdline"] or []):
            try:
                proc.kill()
            except psutil.Error:  # gone meanwhile
                pass


@pytest.fixture(scope="module")
def token_head(tmp_path_factory):
    """A head in Ray's default auth mode with a token on the machine, which makes it token-authenticated."""
    tmp = tmp_path_factory.mktemp("token_head")
    env = _user_env(tmp / "home")
    subprocess.run([str(RAY_CLI), "get-auth-token", "--generate"], env=env, check=True, capture_output=True)
    with ray_head(tmp, env) as address:
        assert "Token authentication is enabled" in (tmp / "ray_head.log").read_text()
        yield address, tmp / "home"


def _digits_sweep(tmp: Path, **extra) -> Path:
    """examples/sweep_digits.yaml cut down: two points, one epoch, up to export."""
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": str(EXAMPLES / "digits_mlp.yaml"),
                                    "axes": {"quant.weight_bits": [4, 6], "train.epochs": [1]},
                                    "steps": "train,export,calibrate,evaluate", "retries": 0, "resources": {"num_cpus": 1},
                                    "shared_dir": str(tmp / "shared"), **extra}))
    return path


@pytest.mark.needs("ray")
def test_sweep_joins_a_token_cluster(tmp_path, token_head):
    """The user started the head here: `codesign sweep --address` finds the token in ~/.ray, no extra step."""
    address, home = token_head
    res = subprocess.run([*CLI, "sweep", str(_digits_sweep(tmp_path)), "--out", str(tmp_path / "out"),
                          "--address", address], cwd=tmp_path, env=_user_env(home), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "2 of 2 points done" in res.stdout and "InvalidAuthToken" not in res.stderr
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert [(r["status"], r["attempts"]) for r in rows] == [("done", 1), ("done", 1)]
    assert [r["quant.weight_bits"] for r in rows] == [4, 6] and all(r["accuracy"] > 0.5 for r in rows)
    for r in rows:
        run = Path(r["run"])
        assert run.parent == tmp_path / "shared" and (run / "done.json").is_file() and (run / "design.json").is_file()


REFUSALS = {  # how the client is set up -> what the one line must name
    "wrong token": (lambda home: {"RAY_AUTH_TOKEN": "0" * 64}, "refused the token from RAY_AUTH_TOKEN"),
    "no token here": (lambda home: {"HOME": str(home.parent / "elsewhere")}, "no Ray token is on this machine"),
    "auth disabled here": (lambda home: {"RAY_AUTH_MODE": "disabled"}, "RAY_AUTH_MODE=disabled is set here"),
}


@pytest.mark.needs("ray")
@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusing_cluster_is_one_line(tmp_path, token_head, case):
    address, home = token_head
    client, needle = REFUSALS[case]
    started = time.monotonic()
    res = subprocess.run([*CLI, "sweep", str(_digits_sweep(tmp_path)), "--out", str(tmp_path / "out"),
                          "--address", address], cwd=tmp_path, env=_user_env(home, **client(home)),
                         capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], res.stderr
    assert "RAY_AUTH_TOKEN" in lines[0] and res.stdout == ""  # says what to set
    assert seconds < 15, f"{seconds:.1f} s: Ray's own refusal takes 20 s of retries"
    assert not (tmp_path / "out").exists() and not (tmp_path / "shared").exists()


@pytest.mark.needs("ray")
def test_join_a_cluster_without_authentication(tmp_path):
    """A head started with RAY_AUTH_MODE=disabled: a client that holds a token joins it all the same
    (it must not switch to token mode, or the cluster's workers could not call back into the driver)."""
    home = tmp_path / "home"
    subprocess.run([str(RAY_CLI), "get-auth-token", "--generate"], env=_user_env(home), check=True,
                   capture_output=True)
    code = ("import os, ray; from codesign.sweeps.ray_cluster import connect; connect({address!r}); "
            "print(int(ray.cluster_resources()['CPU']), os.environ.get('RAY_AUTH_MODE'))")
    with ray_head(tmp_path, _user_env(home, RAY_AUTH_MODE="disabled")) as address:
        res = subprocess.run([sys.executable, "-c", code.format(address=address)], cwd=tmp_path,
                             env=_user_env(home), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["2", "None"] and res.stderr == ""


def test_load_sweep_rejects_random_without_samples(tmp_path):
    with pytest.raises(UserError, match="samples"):
        load_sweep(write_sweep(tmp_path, {"seed": [0, 1]}, sample="random"), tmp_path / "out")


def test_build_jobs_follow_the_task_cores(tmp_path, monkeypatch):
    """A point compiles with as many processes as cores it declared; a plain run uses every core."""
    from codesign.commands import flow
    from sim import jobs
    from codesign.sweeps.sweep_worker import run_point

    monkeypatch.delenv(jobs.ENV, raising=False)
    assert jobs.build_jobs() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(jobs.ENV, "3")
    assert jobs.build_jobs() == 3
    monkeypatch.setenv(jobs.ENV, "zero")  # not a positive number: fall back to the cores
    assert jobs.build_jobs() == len(os.sched_getaffinity(0))

    seen = []
    monkeypatch.setattr(flow, "run_flow", lambda *a, **k: seen.append(jobs.build_jobs()))
    point = {"index": 0, "key": "k", "axes": {}, "config": TINY, "steps": ["train"]}
    row = run_point(point, str(tmp_path / "p"), retries=0, num_cpus=1)
    assert row["status"] == "done" and seen == [1]
