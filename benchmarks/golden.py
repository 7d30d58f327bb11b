"""Golden runs: a refactor must leave every generated file byte for byte as it was.

    # before: train..rtl on every example with the old code (a worktree on PYTHONPATH)
    git worktree add /tmp/old <commit> && ln -s ../templates /tmp/old/codesign/templates
    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/golden.py run --out /tmp/golden/old
    # after: the new code redoes export..rtl on copies of those trained runs
    .venv/bin/python benchmarks/golden.py run --out /tmp/golden/new --from /tmp/golden/old
    .venv/bin/python benchmarks/golden.py compare /tmp/golden/old /tmp/golden/new

`run` writes OUT/hashes.json (sha256 of every file a run holds, except what is meant to differ between
two runs: timings.json and the bookkeeping under .codesign/). `compare` prints each file that differs or
exists on one side only and exits 1 if there is one. The symlink makes `codesign.templates` resolve
inside the worktree (an editable install maps it to the main checkout's templates/).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["digits_mlp", "digits_mlp3", "digits_cnn", "lenet_mnist", "fashion_cnn"]
# differ by design between two runs of the same code (wall-clock seconds, locks, step records)
VOLATILE = ("timings.json", ".codesign/")
TRAINED = ("model.pt", "train.json", "config.yaml")


def run_hashes(run: Path) -> dict[str, str]:
    out = {}
    for path in sorted(p for p in run.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(run).as_posix()
        if not any(rel == v or rel.startswith(v) for v in VOLATILE):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _codesign(*args: str) -> None:
    cmd = [sys.executable, "-c", "from codesign.cli import main; main()", *args]
    subprocess.run(cmd, check=True, cwd=ROOT)


def run(out: Path, examples: list[str], base: Path | None, steps: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    index = out / "hashes.json"
    hashes = json.loads(index.read_text()) if index.is_file() else {}  # runs of other examples stay listed
    for name in examples:
        dest = out / name
        if base is not None:  # keep the trained model: only the code under test regenerates the rest
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()
            for f in TRAINED:
                shutil.copy2(base / name / f, dest / f)
            _codesign("flow", str(ROOT / "examples" / f"{name}.yaml"), "--out", str(dest), "--steps", steps)
        else:
            _codesign("flow", str(ROOT / "examples" / f"{name}.yaml"), "--out", str(dest), "--steps", "train.." +
                      steps.split("..")[-1])
        hashes[name] = run_hashes(dest)
        index.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")


def compare(a: Path, b: Path) -> int:
    ha, hb = (json.loads((p / "hashes.json").read_text()) for p in (a, b))
    bad = 0
    for name in sorted(set(ha) & set(hb)):
        for rel in sorted(set(ha[name]) | set(hb[name])):
            x, y = ha[name].get(rel), hb[name].get(rel)
            if x != y:
                bad += 1
                state = "only in " + (str(a) if y is None else str(b)) if x is None or y is None else "differs"
                print(f"{name}/{rel}: {state}")
    print(f"{bad} files differ in {len(set(ha) & set(hb))} runs")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--from", dest="base", type=Path, help="copy the trained runs of this golden folder")
    r.add_argument("--examples", nargs="+", default=EXAMPLES)
    r.add_argument("--steps", default="export..rtl")
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args()
    if args.cmd == "run":
        run(args.out, args.examples, args.base, args.steps)
    else:
        sys.exit(compare(args.a, args.b))


if __name__ == "__main__":
    main()
