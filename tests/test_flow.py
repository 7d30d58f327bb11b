"""`codesign flow`: make-like steps, a rerun does nothing, a failing step names itself and keeps earlier artifacts."""
from __future__ import annotations

import shutil

from tests.conftest import EXAMPLES, assert_verified, example, write_config
from tests.test_config import run_cli


def test_flow_then_rerun_does_nothing(demo_flow, tmp_path):
    """`make demo`'s flow (demo_flow: a relative --out, every back end copes with a run folder relative
    to the working directory), then reruns of it in a copy of the folder, with a copy of the config."""
    for name in ("model.pt", "policy.json", "eval.json", "design.json", "dse.json", "estimate.json", "report.html"):
        assert (demo_flow.run / name).is_file(), name
    assert "gain over no-exit baseline" in demo_flow.stdout and "report:" in demo_flow.stdout
    assert_verified(demo_flow.run)
    out = tmp_path / "run"
    shutil.copytree(demo_flow.run, out, symlinks=True)
    cfg = tmp_path / "cfg.yaml"
    shutil.copyfile(EXAMPLES / "digits_mlp.yaml", cfg)
    lock = out / ".codesign" / "lock"  # taken and released by every command: its time moves, its bytes (none) do not

    def mtimes() -> dict:
        return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p != lock}

    before = mtimes()
    again = run_cli("flow", str(cfg), "--out", "run", cwd=tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
    assert mtimes() == before and lock.read_bytes() == b""
    # up to date by content: a touched config changes nothing, an edited one retrains
    cfg.write_text(cfg.read_text())
    touched = run_cli("flow", str(cfg), "--out", str(out), "--steps", "train..calibrate", cwd=tmp_path)
    assert touched.returncode == 0 and "nothing to do" in touched.stdout
    assert "epochs: 40" in cfg.read_text()
    cfg.write_text(cfg.read_text().replace("epochs: 40", "epochs: 41"))
    third = run_cli("flow", str(cfg), "--out", str(out), "--steps", "train..calibrate", cwd=tmp_path)
    assert third.returncode == 0 and "nothing to do" not in third.stdout
    assert "train      done" in third.stderr


def test_failing_step_is_named_and_earlier_artifacts_stay(tmp_path):
    cfg = write_config(tmp_path, example("digits_mlp", train__epochs=2, policy__accuracy_delta=-50.0))
    out = tmp_path / "run"
    res = run_cli("flow", str(cfg), "--out", str(out), cwd=tmp_path)
    assert res.returncode == 2
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "step 'calibrate'" in err[0] and "best reachable" in err[0]
    assert (out / "model.pt").is_file() and (out / "train.json").is_file()
    assert not (out / "policy.json").exists()
    summary = run_cli("summary", str(out), cwd=tmp_path)
    assert summary.returncode == 0 and "test accuracy per exit" in summary.stdout


def test_unknown_step(tmp_path):
    cfg = write_config(tmp_path, example("digits_mlp"))
    res = run_cli("flow", str(cfg), "--out", str(tmp_path / "run"), "--steps", "train,fly", cwd=tmp_path)
    assert res.returncode == 2 and "fly" in res.stderr and not (tmp_path / "run").exists()
