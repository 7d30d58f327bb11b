"""benchmarks/check_docs_figures.py: the repo's docs pass; doctored docs fail, one problem per line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import check_docs_figures as cdf  # noqa: E402

HEADLINE = json.loads((ROOT / "benchmarks" / "results" / "ee_vs_baseline.json").read_text())
# the checker's own cases run against these fixed files (a git repository of their own), not against the
# committed results, which every benchmark rerun changes; no "command" key: no command to quote
FIXTURES = {
    "rtl_speed.json": {"design": "digits_mlp", "samples": 449, "mismatches": 0, "build_seconds": 4.4,
                       "run_seconds": 0.715, "cycles_per_second": 2573022},
    "early_exit_lenet_mnist_d025.json": {"runs": [{"exits": [{"exit_fraction": 0.9637}]}]},
}


def fixture_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    if not root.is_dir():
        results = root / "benchmarks" / "results"
        results.mkdir(parents=True)
        for name, data in FIXTURES.items():
            (results / name).write_text(json.dumps(data))
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        subprocess.run(["git", "-C", str(root), "add", "benchmarks/results"], check=True)
    return root


def problems(tmp_path: Path, text: str, name: str = "RESULTS.md", root: Path | None = None) -> list[str]:
    """Check one doctored markdown file against the fixture JSON files (or `root`'s); its problems,
    without the path."""
    doc = tmp_path / name
    doc.write_text(text)
    return [f"{p.line}: {p.message}" for p in cdf.check([doc], root or fixture_root(tmp_path)).problems]


def test_repo_docs_pass() -> None:
    report = cdf.check(sorted((ROOT / "docs").glob("*.md")))
    assert [str(p) for p in report.problems] == []
    # every committed benchmark JSON that docs quote was read, and the tables were checked cell by cell
    assert {"benchmarks/results/ee_vs_baseline.json", "benchmarks/results/model_validation.json",
            "benchmarks/results/rtl_speed.json", "benchmarks/results/sweep_speed.json"} <= report.files
    assert report.figures > 500


def test_wrong_value_in_a_results_table_fails(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "RESULTS.md").read_text()
    gain = HEADLINE["networks"][0]["measured_gain"]  # the headline table's first bold cell
    cell, wrong = f"| **{gain:.2f}x** |", f"| **{gain + 0.1:.2f}x** |"
    assert text.count(cell) == 1
    got = problems(tmp_path, text.replace(cell, wrong), root=ROOT)
    assert len(got) == 1 and f"'{gain + 0.1:.2f}' does not match" in got[0] and "networks[0].measured_gain" in got[0]


@pytest.mark.parametrize("printed, ok", [
    ("4.4 s", True), ("4 s", True), ("4.40 s", True), ("4.5 s", False), ("4.3 s", False),
])
def test_printed_digits_rule(tmp_path: Path, printed: str, ok: bool) -> None:
    """build_seconds is 4.4: any rounding of it to the printed digits matches, nothing else."""
    got = problems(tmp_path, f"# Measured\n\nThe build takes {printed}<!-- fig: rtl_speed.json:build_seconds -->.\n")
    assert (got == []) == ok, got


def test_percent_and_multipliers_scale(tmp_path: Path) -> None:
    ok = ("<!-- figures: early_exit_lenet_mnist_d025.json -->\n"
          "96.4 %<!-- fig: runs[0].exits[0].exit_fraction --> leave early; "
          "2.6 M cycles/s<!-- fig: rtl_speed.json:cycles_per_second -->; "
          "2573k cycles/s<!-- fig: rtl_speed.json:cycles_per_second -->.\n")
    assert problems(tmp_path, ok) == []
    # the JSON fraction 0.9637 printed without scaling is wrong
    assert problems(tmp_path, "0.96 %<!-- fig: early_exit_lenet_mnist_d025.json:runs[0].exits[0].exit_fraction -->\n")


def test_unannotated_figures_fail(tmp_path: Path) -> None:
    text = ("# Notes\n\nNo results here: 4.4 s.\n\n"
            "## Measured on this machine\n\nThe build takes 4.4 s and the run 0.72 s wall.\n\n"
            "| design | cycles/sample |\n| --- | --- |\n| digits MLP | 4097.4 |\n\n"
            "A test checks >= 95 % (a bound, not a figure); `0.5 s` in code is not checked.\n")
    got = problems(tmp_path, text, name="notes.md")
    assert got == [
        "7: unannotated figure '4.4 s' in a results section or paragraph (add `<!-- fig: FILE.json:KEY -->` after it)",
        "7: unannotated figure '0.72 s' in a results section or paragraph (add `<!-- fig: FILE.json:KEY -->` after it)",
        "11: unannotated figure '4097.4' in a results table (add a `table:` annotation)",
    ]
    # outside results sections, a paragraph that says it was measured (or names benchmarks/) counts too
    got = problems(tmp_path, "# Notes\n\nMeasured on the digits MLP: 4097.4 cycles per sample.\n", name="notes.md")
    assert len(got) == 1 and "'4097.4 cycles'" in got[0]


def test_table_annotation(tmp_path: Path) -> None:
    spec = ("<!-- table: rtl_speed.json\n"
            "header: | design | test split ({samples}) | build | sim |\n"
            "row: | {design} | {mismatches} mismatches | {build_seconds} s | {run_seconds} s ({cycles_per_second} M cycles/s) |\n"
            "rows: .\n-->\n")
    good = "| digits_mlp | 0 mismatches | 4.4 s | 0.72 s (2.6 M cycles/s) |"
    table = "| design | test split (449) | build | sim |\n| --- | --- | --- | --- |\n"
    assert problems(tmp_path, spec + table + good + "\n") == []
    wrong = {
        "| digits_mlp | 0 mismatches | 4.4 s | 0.82 s (2.6 M cycles/s) |": "'0.82' does not match",
        "| digits_cnn | 0 mismatches | 4.4 s | 0.72 s (2.6 M cycles/s) |": "does not have the form",
        "| digits_mlp | 0 mismatches | 4.4 s |": "row has 3 cells, its template 4",
        good + "\n" + good: "table has 2 rows, its annotation names 1",
    }
    for row, message in wrong.items():
        got = problems(tmp_path, spec + table + row + "\n")
        assert len(got) == 1 and message in got[0], (row, got)
    # a template may not write a figure itself, and a label cell holds no number
    got = problems(tmp_path, spec.replace("{mismatches} mismatches", "0 mismatches") + table + good + "\n")
    assert len(got) == 1 and "writes a number itself" in got[0]
    got = problems(tmp_path, spec.replace("{design}", "*") + table + good.replace("digits_mlp", "mlp 2") + "\n")
    assert len(got) == 1 and "label cell 'mlp 2' holds a number" in got[0]


def test_bad_keys_and_files(tmp_path: Path) -> None:
    cases = {
        "4.4 s<!-- fig: rtl_speed.json:build_secs -->": "no key 'build_secs'",
        "4.4 s<!-- fig: build_seconds -->": "names no file",
        "4.4 s<!-- fig: nonexistent.json:build_seconds -->": "is not committed",
        "4.4 s<!-- fig: ../x.json:a -->": "benchmarks/results/*.json only",
        "4.4 s<!-- fig: rtl_speed.json:build_seconds rtl_speed.json:run_seconds -->": "only 1 numbers precede it",
        "449 s<!-- fig: rtl_speed.json:design -->": "is 'digits_mlp', not a number",
    }
    for text, message in cases.items():
        got = problems(tmp_path, f"# Measured\n\n{text}\n")
        assert len(got) == 1 and message in got[0], (text, got)


def test_annotation_that_would_split_a_paragraph_fails(tmp_path: Path) -> None:
    """A comment starting a line under paragraph text is an HTML block when rendered: the paragraph breaks."""
    fig = "4.4 s<!-- fig: rtl_speed.json:build_seconds -->"
    assert problems(tmp_path, f"# Measured\n\n<!-- figures: rtl_speed.json -->\nThe build takes {fig}.\n") == []
    got = problems(tmp_path, f"# Measured\n\nThe build\n<!-- figures: rtl_speed.json -->\ntakes {fig}.\n")
    assert len(got) == 1 and got[0].startswith("4: a `figures` comment starting a line inside a paragraph")


def test_uncommitted_json_and_recorded_command(tmp_path: Path) -> None:
    """Only files git tracks count; a JSON's recorded command must be quoted where its figures are."""
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "b.json").write_text(json.dumps({"command": ".venv/bin/python benchmarks/b.py --fast",
                                                 "seconds": 1.25}))
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    doc = "# Measured\n\n{}It takes 1.2 s<!-- fig: b.json:seconds -->.\n"
    assert "is not committed" in problems(tmp_path, doc.format(""), root=tmp_path)[0]
    subprocess.run(["git", "-C", str(tmp_path), "add", "benchmarks/results/b.json"], check=True)
    got = problems(tmp_path, doc.format(""), root=tmp_path)
    assert len(got) == 1 and "was written by `.venv/bin/python benchmarks/b.py --fast`" in got[0]
    assert problems(tmp_path, doc.format("    .venv/bin/python benchmarks/b.py \\\n        --fast\n\n"),
                    root=tmp_path) == []


def test_cli_one_line_per_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "RESULTS.md"
    doc.write_text("# Results\n\nIt takes 4.4 s and 0.9 s<!-- fig: rtl_speed.json:run_seconds -->.\n")
    assert cdf.main(["--root", str(fixture_root(tmp_path)), str(doc)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{doc}:3: '0.9' does not match benchmarks/results/rtl_speed.json:run_seconds = 0.715: "
        "rounded to the printed digits it is 0.7",
        f"{doc}:3: unannotated figure '4.4 s' in a results section or paragraph "
        "(add `<!-- fig: FILE.json:KEY -->` after it)",
    ]
    assert err.strip().endswith("1 benchmark JSON files over 1 docs: 2 problems")
    assert cdf.main([]) == 0   # the repo's docs
