"""Shared fixtures: small trained runs, built once per session."""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
import yaml

from codesign.frontend.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _fst_ok() -> bool:
    from sim.build import fst_missing

    return not fst_missing()


# what a `needs` marker may name: how to tell it is here, and how to install it
TOOLS = {
    "yosys": (lambda: shutil.which("yosys") is not None, "apt-get install yosys"),
    "chromium": (lambda: shutil.which("chromium") is not None, "apt-get install chromium"),
    "g++": (lambda: shutil.which("g++") is not None, "apt-get install g++"),
    "fst": (_fst_ok, "apt-get install liblz4-dev zlib1g-dev"),
    "chattr": (lambda: shutil.which("chattr") is not None, "apt-get install e2fsprogs"),
    "ray": (lambda: _importable("ray"), "pip install '.[cluster]'"),
    "pywellen": (lambda: _importable("pywellen"), "pip install '.[test]'"),
}


# `make test-fast` (pytest -m fast): pure Python, the models, the policies, one small Verilator build
FAST_MODULES = {"test_config", "test_policies", "test_calibration", "test_hw_models", "test_hw_system",
                "test_traffic", "test_runfolder", "test_rtl_mvu", "test_docs_figures", "test_layering"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(*tools): the test needs these tools (tests/conftest.py TOOLS); "
                                       "skipped without them, except under CI=true, where that is a failure")
    config.addinivalue_line("markers", "fast: the fast tier (`make test-fast`); tests/conftest.py FAST_MODULES")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in FAST_MODULES:
            item.add_marker(pytest.mark.fast)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A missing tool skips a test on a developer's machine and fails it in CI (.ci/run sets CI=true),
    so a broken install can never turn into a quiet summary of skips."""
    for mark in item.iter_markers("needs"):
        for tool in mark.args:
            present, how = TOOLS[tool]
            if not present():
                msg = f"{tool} is not installed ({how})"
                if os.environ.get("CI", "").lower() == "true":
                    pytest.fail(f"{msg}; CI must install it (.ci/run)", pytrace=False)
                pytest.skip(msg)


def benchmark(name: str):
    """benchmarks/<name>.py as a module (benchmarks/ is not a package): tests reuse its helpers."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def example(name: str, **overrides) -> dict:
    """An example config as a dict, with dotted-key overrides (e.g. train__epochs=3)."""
    data = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    for key, value in overrides.items():
        node = data
        *path, last = key.split("__")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return data


def write_config(tmp: Path, data: dict, name: str = "cfg.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _trained(tmp_path_factory, name: str, data: dict | None = None, **overrides) -> Path:
    from codesign.frontend.export import export
    from codesign.frontend.train import train

    cfg = parse_config(data if data is not None else example(name, **overrides))
    run = tmp_path_factory.mktemp(name) / "run"
    train(cfg, run, quiet=True)
    export(run)
    return run


def calibrated_copy(run: Path, tmp_path_factory, evaluate: bool = False) -> Path:
    """A private copy of a session run, calibrated (max_softmax, delta 1 pp) and optionally evaluated."""
    import shutil

    from codesign.frontend.calibrate_run import calibrate_run
    from codesign.frontend.evaluate import evaluate_run

    copy = tmp_path_factory.mktemp(run.parent.name) / "run"
    shutil.copytree(run, copy)
    calibrate_run(copy, "max_softmax", accuracy_delta=1.0)
    if evaluate:
        evaluate_run(copy)
    return copy


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory) -> Path:
    """The default digits MLP, fully trained (about 7 s) and exported."""
    return _trained(tmp_path_factory, "digits_mlp")


@pytest.fixture(scope="session")
def cnn_run(tmp_path_factory) -> Path:
    return _trained(tmp_path_factory, "digits_cnn", train__epochs=15)


@pytest.fixture(scope="session")
def cnn_valid_run(tmp_path_factory) -> Path:
    """The digits CNN with a valid (unpadded) first conv: 8x8 -> 8x6x6, 36 output pixels for 64 input
    pixels, so one pixel per input beat would bound a first conv that makes a pixel per cycle."""
    data = example("digits_cnn", train__epochs=15)
    data["model"]["backbone"][0]["padding"] = 0
    return _trained(tmp_path_factory, "digits_cnn_valid", data)


@pytest.fixture(scope="session")
def mlp3_run(tmp_path_factory) -> Path:
    return _trained(tmp_path_factory, "digits_mlp3", train__epochs=25)



@dataclasses.dataclass(frozen=True)
class FlowRun:
    run: Path
    stdout: str
    stderr: str


def shared_dir(tmp_path_factory, name: str) -> Path:
    """A folder every pytest-xdist worker of this run sees (`make test` runs two, --dist loadfile),
    or a fresh one without xdist."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run_id:
        return tmp_path_factory.mktemp(name)
    folder = tmp_path_factory.getbasetemp().parent / f"{name}-{run_id}"  # the run's, above each worker's
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def demo_flow(tmp_path_factory) -> FlowRun:
    """`make demo`'s flow (examples/digits_mlp.yaml, every step, a relative --out), run once per
    test run (the workers share it under a lock): the most expensive fixture, read by the flow tests;
    a test that changes it works on a copy (shutil.copytree(..., symlinks=True))."""
    import fcntl
    import json
    import subprocess
    import sys

    base = shared_dir(tmp_path_factory, "demo_flow")
    with open(base / "fixture.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker waits for the one that runs the flow
        done = base / "fixture.json"
        if not done.is_file():
            res = subprocess.run([sys.executable, "-m", "codesign.cli", "flow", str(EXAMPLES / "digits_mlp.yaml"),
                                  "--out", "run"], cwd=base, capture_output=True, text=True, timeout=1800)
            assert res.returncode == 0, res.stderr[-4000:]
            done.write_text(json.dumps({"stdout": res.stdout, "stderr": res.stderr}))
        out = json.loads(done.read_text())
    return FlowRun(base / "run", out["stdout"], out["stderr"])


@pytest.fixture(scope="session")
def flow_run(demo_flow) -> Path:
    """A run made by `codesign flow` (so every step has its record): the demo flow's; copy it to change it."""
    return demo_flow.run


def assert_verified(run: Path, *, hls: bool = True, rtl: bool = True, sim: bool = True) -> None:
    """Every check a flow ran says the hardware equals the integer reference: export, C simulation,
    Verilator, the simulation scoreboards (design and no-exit baseline)."""
    import json

    reports = {"export/verify.json": True, "hls/csim.json": hls, "rtl/verify.json": rtl}
    for rel, wanted in reports.items():
        if wanted:
            r = json.loads((run / rel).read_text())
            assert r["samples"] > 0 and r["mismatches"] == 0, (rel, r["mismatches"])
    if sim:
        data = json.loads((run / "sim" / "data.json").read_text())
        assert data["scoreboard"] == {"lost": 0, "duplicated": 0, "altered": 0} and not data["deadlock"]
        for point in json.loads((run / "sim" / "sweep.json").read_text())["points"]:
            assert point["scoreboard"] == {"lost": 0, "duplicated": 0, "altered": 0}, point["traffic"]


@pytest.fixture(scope="session")
def mlp_rtl_run(mlp_run, tmp_path_factory) -> Path:
    """The digits MLP calibrated (max_softmax, 1 pp) with its RTL generated: what hls, rtl, sim, estimate
    and dse need."""
    from codesign.rtl import generate_rtl

    run = calibrated_copy(mlp_run, tmp_path_factory)
    generate_rtl(run)
    return run
