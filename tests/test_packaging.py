"""A non-editable install finds its templates from any folder."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_non_editable_install_ships_templates(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True, timeout=300)
    probe = ("import codesign, codesign.templates, hw_models, sim, importlib.resources as r;"
             "t = r.files('codesign.templates');"
             "print(codesign.__file__); print(sorted(p.name for p in (t / 'rtl').iterdir() if p.name.endswith('.v'))[:3]);"
             "print((r.files('sim') / 'stream_tb.cpp').is_file())")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                         check=True, capture_output=True, text=True, timeout=120).stdout.splitlines()
    assert out[0].startswith(str(target)), out  # the installed copy, not the source tree
    assert "cs_" in out[1] and out[2] == "True"
