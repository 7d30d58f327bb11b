"""Config validation: every user mistake is one line, exit 2, nothing written."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from codesign.frontend.config import load_config, parse_config
from stage_ir.errors import UserError
from tests.conftest import EXAMPLES, example, write_config

CLI = [sys.executable, "-m", "codesign.cli"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn", "digits_mlp3", "lenet_mnist", "fashion_cnn"])
def test_examples_validate(name):
    cfg = load_config(EXAMPLES / f"{name}.yaml")
    assert cfg.model.backbone


BAD = {
    "unknown key": (lambda d: d.update(colour="red"), "colour"),
    "unknown layer kind": (lambda d: d["model"]["backbone"].insert(1, {"type": "conv3d"}), "conv3d"),
    "exit after nonexistent block": (lambda d: d["model"]["exits"].__setitem__(0, {"after": 42}), "42"),
    "bit width 0": (lambda d: d["quant"].__setitem__("weight_bits", 0), "weight_bits"),
    "bit width 17": (lambda d: d["model"]["backbone"][1].__setitem__("bits", 17), "bits"),
    "exit on accumulator": (lambda d: d["model"]["exits"].__setitem__(0, {"after": 1}), "relu"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_one_line(case):
    mutate, needle = BAD[case]
    data = example("digits_mlp")
    mutate(data)
    with pytest.raises(UserError) as err:
        parse_config(data)
    msg = str(err.value)
    assert "\n" not in msg and needle in msg


def test_missing_relu_is_rejected():
    from codesign.frontend.model import plan_network

    data = example("digits_mlp")
    del data["model"]["backbone"][2]  # linear followed by linear
    data["model"]["exits"] = []
    with pytest.raises(UserError, match="needs a relu"):
        plan_network(parse_config(data), (1, 8, 8), 10)


@pytest.mark.parametrize("case", ["malformed", "unknown kind", "bits 17", "exit 42", "missing data", "exists"])
def test_cli_bad_input_exit_2_nothing_written(tmp_path, case):
    data = example("digits_mlp", train__epochs=1)
    out = tmp_path / "run"
    if case == "malformed":
        cfg = tmp_path / "bad.yaml"
        cfg.write_text("model: [backbone: {type: linear\n")
    else:
        if case == "unknown kind":
            data["model"]["backbone"][1]["type"] = "lstm"
        elif case == "bits 17":
            data["quant"]["act_bits"] = 17
        elif case == "exit 42":
            data["model"]["exits"][0]["after"] = 42
        elif case == "missing data":
            data["data"] = {"dataset": "fashion-mnist", "path": str(tmp_path / "nowhere")}
        elif case == "exists":
            out.mkdir()
            (out / "keep.txt").write_text("x")
        cfg = write_config(tmp_path, data)
    res = run_cli("train", str(cfg), "--out", str(out), "--quiet", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    if case == "exists":
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run-")]


def test_every_subcommand_has_help(tmp_path):
    res = run_cli("--help", cwd=tmp_path)
    assert res.returncode == 0
    commands = [ln.split()[0] for ln in res.stdout.split("Commands:")[1].splitlines() if ln.startswith("  ")]
    assert "train" in commands and "export" in commands
    for command in commands:
        sub = run_cli(command, "--help", cwd=tmp_path)
        assert sub.returncode == 0 and "Usage:" in sub.stdout, command


def test_config_reference_is_current():
    from codesign.frontend.config_doc import render
    from tests.conftest import ROOT

    assert (ROOT / "docs" / "config.md").read_text() == render(), "run: python -m codesign.frontend.config_doc > docs/config.md"



def test_yaml_anchors_and_merge_keys_are_not_duplicates(tmp_path):
    """The duplicate-key check leaves YAML's own reuse alone: an alias, and a merged mapping overridden."""
    text = (EXAMPLES / "digits_mlp.yaml").read_text()
    for old, new in [("  exit_head:\n", "  exit_head: &head\n"), ("  classifier:\n    - {type: linear}\n", "  classifier: *head\n"),
                     ("policy:\n  kind: max_softmax\n  accuracy_delta: 1.0\n",
                      "policy:\n  <<: {kind: margin, accuracy_delta: 2.0}\n  kind: entropy\n")]:
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "cfg.yaml").write_text(text)
    cfg = load_config(tmp_path / "cfg.yaml")
    assert (cfg.policy.kind, cfg.policy.accuracy_delta) == ("entropy", 2.0)
    assert cfg.model.classifier == cfg.model.exit_head
