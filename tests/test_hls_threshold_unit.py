"""The HLS threshold unit (templates/hls/threshold_unit.h.j2) against stage_ir.policies.

Every policy's unit is rendered for a three-exit network, compiled with g++ into one
standalone harness and fed random logits (wide and narrow ranges, ties, extremes) with
random, "never" and "always" thresholds; class, score, decision of every early exit and
the final exit index / class must equal the integer reference.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from codesign import hls
from stage_ir import policies as pol

pytestmark = pytest.mark.needs("g++")

CLASSES = 10
FRACS = [5, 3, 4]  # per exit (the final one last): tables differ between exits
BITS = [12, 9, 14]
SAMPLES = 1500


def _tables(policy: str) -> dict:
    return pol.make_tables(policy, FRACS, CLASSES, BITS)


def _random_logits(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Per exit [n, C]: a mix of full-range, narrow (many ties) and extreme rows."""
    out = []
    for bits in BITS:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        wide = rng.integers(lo, hi + 1, size=(n, CLASSES))
        narrow = rng.integers(-3, 4, size=(n, CLASSES)) + rng.integers(lo + 3, hi - 3, size=(n, 1))
        extreme = rng.choice([lo, hi, 0, -1], size=(n, CLASSES))
        near = rng.integers(-40, 41, size=(n, CLASSES))  # differences around the exp table's reach
        kind = rng.integers(0, 4, size=(n, 1))
        z = np.where(kind == 0, wide, np.where(kind == 1, narrow, np.where(kind == 2, extreme, near)))
        z[: n // 50] = rng.integers(lo, hi + 1)  # all classes tied
        out.append(z.astype(np.int64))
    if n > 10:  # the same class at every exit (patience counts up) for a tenth of the rows
        rows = slice(n - n // 10, n)
        base = rng.integers(-200, 201, size=(n // 10, CLASSES))  # fits every exit's width
        for z in out:
            z[rows] = base
    return out


def _threshold_sets(policy: str, tables: dict, rng: np.random.Generator) -> list[list[int]]:
    ranges = [pol.threshold_range(policy, tables, k) for k in range(len(FRACS) - 1)]
    never = [pol.never_threshold(policy, tables, k) for k in range(len(FRACS) - 1)]
    always = [hi if t == lo else lo for (lo, hi), t in zip(ranges, never)]
    random = [[int(rng.integers(lo, hi + 1)) for lo, hi in ranges] for _ in range(3)]
    return [never, always, [never[0], always[1]], *random]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    folder = tmp_path_factory.mktemp("threshold_unit")
    units = []
    for policy in pol.POLICIES:
        ns = f"tu_{policy}"
        tables = _tables(policy)
        defaults = [pol.never_threshold(policy, tables, k) for k in range(len(FRACS) - 1)]
        (folder / f"{ns}.h").write_text(hls.threshold_unit_source(policy, tables, defaults, ns))
        units.append((ns, f"{ns}.h", tables))
    (folder / "harness.cpp").write_text(hls.threshold_unit_harness(units))
    binary = folder / "harness"
    subprocess.run(["g++", "-std=c++14", "-O1", "-w", "-I", str(hls.ap_types_dir()), "harness.cpp", "-o", str(binary)],
                   cwd=folder, check=True)
    return binary


def _run(binary, policy: str, logits: list[np.ndarray], thresholds: list[int]) -> np.ndarray:
    rows = np.concatenate(logits, axis=1)
    text = " ".join(map(str, thresholds)) + "\n" + "\n".join(" ".join(map(str, r)) for r in rows.tolist()) + "\n"
    res = subprocess.run([str(binary), f"tu_{policy}"], input=text, capture_output=True, text=True, check=True)
    return np.loadtxt(res.stdout.splitlines(), dtype=np.int64, ndmin=2)


@pytest.mark.parametrize("policy", pol.POLICIES)
def test_threshold_unit_equals_reference(harness, policy):
    rng = np.random.default_rng(7 + pol.POLICIES.index(policy))
    tables = _tables(policy)
    logits = _random_logits(rng, SAMPLES)
    scores = pol.exit_scores(policy, logits, tables)
    early = len(FRACS) - 1
    mixed = False  # the comparison is exercised on both sides, not only never/always
    for thresholds in _threshold_sets(policy, tables, rng):
        got = _run(harness, policy, logits, thresholds)
        view = pol.view_from_scores(scores, thresholds)
        for k in range(early):
            cls, score, dec = got[:, 3 * k], got[:, 3 * k + 1], got[:, 3 * k + 2]
            np.testing.assert_array_equal(cls, scores.classes[k], err_msg=f"{policy} class, exit {k}")
            np.testing.assert_array_equal(score, scores.score[k], err_msg=f"{policy} score, exit {k}")
            np.testing.assert_array_equal(dec, view.decisions[k], err_msg=f"{policy} decision, exit {k} {thresholds}")
            mixed |= 0.05 < dec.mean() < 0.95
        np.testing.assert_array_equal(got[:, 3 * early], scores.classes[-1])
        np.testing.assert_array_equal(got[:, -2], view.exit_index, err_msg=f"{policy} exit index {thresholds}")
        np.testing.assert_array_equal(got[:, -1], view.exit_class)
    assert mixed, f"{policy}: no threshold set splits the samples"
