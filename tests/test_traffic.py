"""Traffic specs: grammar, errors, and the statistics of the generated exit sequences."""
from __future__ import annotations

import numpy as np
import pytest

from stage_ir.errors import UserError
from sim.traffic import exit_sequence, parse_traffic


def test_iid_rates():
    t = parse_traffic("iid:0.6,0.3", 3)
    seq = exit_sequence(t, 200_000, seed=1)
    assert t.exit_fractions == pytest.approx((0.6, 0.3, 0.1))
    for k, f in enumerate(t.exit_fractions):
        assert abs(np.mean(seq == k) - f) < 0.005


def test_markov_bursts():
    t = parse_traffic("markov:0.5,16", 2)
    seq = exit_sequence(t, 400_000, seed=2)
    assert abs(seq.mean() - 0.5) < 0.03
    runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, seq, -1]) != 0))
    # redraw w.p. 1/L and keep the old value half the time: mean run length 2L for p = 0.5
    assert 28 < runs.mean() < 36
    iid = exit_sequence(parse_traffic("iid:0.5", 2), 400_000, seed=2)
    assert np.mean(np.diff(iid) != 0) > 10 * np.mean(np.diff(seq) != 0)


def test_pattern_and_trace(tmp_path):
    assert exit_sequence(parse_traffic("pattern:0,1", 2), 5).tolist() == [0, 1, 0, 1, 0]
    trace = tmp_path / "t.txt"
    trace.write_text("1\n0\n0\n")
    t = parse_traffic(f"trace:{trace}", 2)
    assert exit_sequence(t, 4).tolist() == [1, 0, 0, 1] and t.name == "trace_t"
    assert parse_traffic("data", 2).forced is False and exit_sequence(parse_traffic("data", 2), 3) is None


@pytest.mark.parametrize("spec,needle", [
    ("iid", "grammar"), ("iid:1.5", "[0, 1]"), ("iid:0.5,0.2", "1 exit rate"), ("markov:0.5", "burst length"),
    ("bursty:0.5,3", "unknown traffic kind"), ("pattern:0,2", "exit index 2"), ("trace:/nonexistent", "not found"),
    ("iid:a", "numbers"),
])
def test_bad_specs(spec, needle):
    with pytest.raises(UserError) as err:
        parse_traffic(spec, 2)
    assert needle in str(err.value) and "\n" not in str(err.value)
