"""Run a built stream testbench and parse what it recorded."""
from __future__ import annotations

import dataclasses
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping, Sequence


@dataclasses.dataclass
class SimResult:
    """Output beats (ints) and their handshake cycles per output stream."""

    outputs: list[list[int]]
    out_cycles: list[list[int]]
    in_cycles: list[list[int]]  # accept cycle of every input beat
    cycles: int
    timeout: bool
    # per probe (sim.build.Probe), over all `cycles`: level -> {"max", "sum"}; flags -> {"bits": [cycles per bit]}
    probes: dict[str, dict] = dataclasses.field(default_factory=dict)


def _write_beats(path: Path, beats: Sequence[int]) -> None:
    path.write_text("".join(f"{int(b):x}\n" for b in beats))


def _probs(p: float | Sequence[float]) -> str:
    return ",".join(repr(float(x)) for x in (p if isinstance(p, (list, tuple)) else [p]))


def _read_out(path: Path) -> tuple[list[int], list[int]]:
    beats, cycles = [], []
    for line in path.read_text().split("\n"):
        if line:
            c, h = line.split()
            cycles.append(int(c))
            beats.append(int(h, 16))
    return beats, cycles


def _read_probes(path: Path) -> dict[str, dict]:
    probes: dict[str, dict] = {}
    if not path.is_file():
        return probes
    for line in path.read_text().splitlines():
        name, kind, *values = line.split()
        nums = [int(v) for v in values]
        probes[name] = {"max": nums[0], "sum": nums[1]} if kind == "level" else {"bits": nums}
    return probes


def run_stream(
    exe: Path,
    inputs: Sequence[Sequence[int]],
    *,
    expected: Sequence[int] | None = None,
    statics: Mapping[str, int] | None = None,
    files: Mapping[str, str] | None = None,
    seed: int = 1,
    p_valid: float | Sequence[float] = 1.0,
    p_ready: float | Sequence[float] = 1.0,
    max_cycles: int = 10_000_000,
    tail: int = 64,
    workdir: Path | None = None,
    vcd: Path | None = None,
    wave: Path | None = None,
    static_changes: Sequence[tuple[int, str, int]] = (),
    watchdog: int = 0,
) -> SimResult:
    """Feed `inputs[i]` (non-negative ints, one per beat) to input stream i.

    `expected[j]`: number of beats output j should produce (the run stops
    `tail` cycles after all are seen, so extra beats show up as extras);
    None or -1: stop `tail` cycles after the last handshake.
    `statics`: values of static ports (e.g. thresholds).
    `files`: name -> text written into the run folder first ($readmemh
    files named by relative path in the build's params).
    `p_valid` / `p_ready`: per-cycle probability that a waiting input beat is
    offered / that an output is ready (1.0 = no gaps, no backpressure); a
    list gives one per stream.
    `wave` (or its older name `vcd`): write a waveform there; VCD from a
    `build(..., trace=True)`, FST from `trace="fst"`.
    `static_changes`: (cycle, name, value) writes to static ports during the
    run (e.g. a threshold register changed at run time), applied at the start
    of that cycle.
    `watchdog`: stop with `timeout` when no beat moves on any stream for this
    many cycles (a deadlock), instead of running to `max_cycles`; 0 = off.
    """
    with tempfile.TemporaryDirectory(prefix="codesign_sim_", dir=workdir) as tmp:
        d = Path(tmp)
        for i, beats in enumerate(inputs):
            _write_beats(d / f"in{i}.hex", beats)
        (d / "static_at.txt").write_text("".join(f"{int(c)} {k} {int(v):x}\n" for c, k, v in sorted(static_changes)))
        (d / "watchdog.txt").write_text(f"{int(watchdog)}\n")
        (d / "static.txt").write_text("".join(f"{k} {int(v):x}\n" for k, v in (statics or {}).items()))
        for name, text in (files or {}).items():
            (d / name).write_text(text)
        exp = ",".join(str(-1 if e is None else int(e)) for e in (expected or []))
        cmd = [str(exe), str(d), str(seed), _probs(p_valid), _probs(p_ready), str(max_cycles), str(tail), exp or "-1"]
        wave = wave if wave is not None else vcd
        if wave is not None:
            cmd.append(str(Path(wave).resolve()))
        proc = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"simulation {exe.name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        summary = dict(line.split() for line in (d / "summary.txt").read_text().splitlines())
        n_out = sum(1 for k in summary if k.startswith("produced"))
        outs = [_read_out(d / f"out{j}.txt") for j in range(n_out)]
        in_cycles = [
            [int(x) for x in (d / f"acc{i}.txt").read_text().split()] for i in range(len(inputs))
        ]
        return SimResult(
            outputs=[o[0] for o in outs],
            out_cycles=[o[1] for o in outs],
            in_cycles=in_cycles,
            cycles=int(summary["cycles"]),
            timeout=summary["timeout"] == "1",
            probes=_read_probes(d / "probes.txt"),
        )
