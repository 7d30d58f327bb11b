"""Traffic specs: which exit each sample takes when the testbench forces decisions.

Grammar (K = number of exits, K-1 early ones):

    data                      real samples, real decisions (default)
    iid:p0[,p1...]            independent; p_k = fraction of ALL samples leaving at early exit k
    markov:p0[,p1...],L       bursty: the same fractions, but a sample redraws its exit only with
                              probability 1/L and otherwise repeats the previous sample's (mean burst L)
    pattern:e0,e1,...         this sequence of exit indices, repeated (all-exit, no-exit, alternating)
    trace:FILE                a recorded sequence of exit indices, one per line (or a JSON list)

The bursty source is hw_models' own (`sticky_exits`), so the simulator replays
exactly the process the analytical model predicts for.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stage_ir.errors import UserError

GRAMMAR = "data | iid:p0[,p1..] | markov:p0[,p1..],L | pattern:e0,e1,.. | trace:FILE"


@dataclass(frozen=True)
class Traffic:
    kind: str
    exit_fractions: tuple[float, ...] = ()  # one per exit, final last (iid, markov)
    burst_length: float = 1.0
    sequence: tuple[int, ...] = ()  # pattern / trace
    spec: str = "data"

    @property
    def name(self) -> str:
        """A file-name-safe name for RUN/sim/<name>.json."""
        if self.kind == "trace":
            return "trace_" + re.sub(r"[^A-Za-z0-9_.-]", "_", Path(self.spec.split(":", 1)[1]).stem)
        return re.sub(r"[^A-Za-z0-9_.-]", "_", self.spec.replace(":", "_").replace(",", "_"))

    @property
    def forced(self) -> bool:
        return self.kind != "data"


def _numbers(text: str, spec: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"traffic {spec!r}: not a list of numbers; grammar: {GRAMMAR}") from None


def _fractions(rates: list[float], num_exits: int, spec: str) -> tuple[float, ...]:
    if len(rates) != num_exits - 1:
        raise UserError(f"traffic {spec!r}: give {num_exits - 1} exit rate(s), one per early exit; grammar: {GRAMMAR}")
    if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0 + 1e-12:
        raise UserError(f"traffic {spec!r}: rates must be in [0, 1] and sum to at most 1 (fractions of all samples)")
    return (*rates, max(0.0, 1.0 - sum(rates)))


def _check_indices(seq: list[int], num_exits: int, spec: str) -> tuple[int, ...]:
    bad = [e for e in seq if not 0 <= e < num_exits]
    if not seq:
        raise UserError(f"traffic {spec!r}: the exit sequence is empty")
    if bad:
        raise UserError(f"traffic {spec!r}: exit index {bad[0]} does not exist; this design has exits 0..{num_exits - 1}")
    return tuple(seq)


def _read_trace(path: Path, spec: str) -> list[int]:
    if not path.is_file():
        raise UserError(f"traffic {spec!r}: trace file {path} not found")
    fmt = f"traffic {spec!r}: {path} must hold integers (exit indices), one per line or a JSON list"
    try:
        text = path.read_bytes().decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UserError(f"{fmt}; it is not a text file") from None
    try:
        values = json.loads(text) if text.startswith("[") else [int(v) for v in text.split()]
    except (ValueError, json.JSONDecodeError):
        raise UserError(fmt) from None
    if not isinstance(values, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise UserError(fmt)
    return values


def parse_traffic(spec: str, num_exits: int) -> Traffic:
    spec = spec.strip()
    if spec == "data":
        return Traffic("data", spec=spec)
    kind, _, rest = spec.partition(":")
    if not rest:
        raise UserError(f"malformed traffic spec {spec!r}; grammar: {GRAMMAR}")
    if kind == "iid":
        return Traffic("iid", _fractions(_numbers(rest, spec), num_exits, spec), 1.0, spec=spec)
    if kind == "markov":
        values = _numbers(rest, spec)
        if len(values) < 2 or values[-1] < 1.0:
            raise UserError(f"traffic {spec!r}: needs exit rate(s) then a burst length L >= 1; grammar: {GRAMMAR}")
        return Traffic("markov", _fractions(values[:-1], num_exits, spec), values[-1], spec=spec)
    if kind == "pattern":
        values = _numbers(rest, spec)
        if any(v != int(v) for v in values):
            raise UserError(f"traffic {spec!r}: a pattern lists integer exit indices")
        return Traffic("pattern", sequence=_check_indices([int(v) for v in values], num_exits, spec), spec=spec)
    if kind == "trace":
        return Traffic("trace", sequence=_check_indices(_read_trace(Path(rest), spec), num_exits, spec), spec=spec)
    raise UserError(f"unknown traffic kind {kind!r}; grammar: {GRAMMAR}")


def exit_sequence(traffic: Traffic, samples: int, seed: int = 0) -> np.ndarray | None:
    """The forced exit index of each sample, or None for real decisions."""
    if traffic.kind == "data":
        return None
    if traffic.kind in ("pattern", "trace"):
        return np.resize(np.asarray(traffic.sequence, dtype=np.int64), samples)
    from hw_models.flow_sim import sticky_exits

    cum = np.cumsum(traffic.exit_fractions)[None, :-1]
    rng = np.random.default_rng(seed)
    return sticky_exits(rng, cum, np.array([traffic.burst_length]), samples)[:, 0].astype(np.int64)
