"""The report renders in a real browser (headless Chromium) with every plot decoded."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from codesign.commands.estimate_run import dse_run, estimate_run
from codesign.commands.report import write_report
from tests.conftest import calibrated_copy

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  document.body.setAttribute('data-probe', JSON.stringify(imgs));
});
</script>"""


@pytest.fixture(scope="module")
def reported(mlp_run, tmp_path_factory):
    run = calibrated_copy(mlp_run, tmp_path_factory, evaluate=True)
    dse_run(run, "xc7z020")
    estimate_run(run, ["xc7z020", "xczu3eg"])
    write_report(run)
    return run


def test_report_self_contained_and_deterministic(reported):
    html = (reported / "report.html").read_text()
    assert "<img" in html and 'src="data:image/png;base64,' in html
    assert not re.search(r'src="(?!data:)', html)  # nothing loaded from disk or network
    md = (reported / "report.md").read_text()
    for section in ("Accuracy and exit fractions", "The chosen design", "Bit-exactness", "Predicted early-exit gain"):
        assert section in md
    before = (reported / "report.html").read_bytes()
    write_report(reported)
    assert (reported / "report.html").read_bytes() == before


@pytest.mark.needs("chromium")
def test_every_plot_loads_in_chromium(reported, tmp_path):
    page = tmp_path / "probe.html"
    page.write_text((reported / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120)
    probe = re.search(r'data-probe="([^"]*)"', out.stdout)
    assert probe, out.stderr[-2000:]
    images = json.loads(probe.group(1).replace("&quot;", '"'))
    assert len(images) >= 3  # accuracy/cost curves, Pareto front, throughput vs exit rate
    for complete, width, height in images:
        assert complete and width > 0 and height > 0
