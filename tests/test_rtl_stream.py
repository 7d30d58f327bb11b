"""Stream plumbing: cs_fifo, cs_split, cs_width_converter, cs_cond_buffer,
cs_exit_merge. Nothing lost, duplicated or altered under random input gaps
and backpressure (including near-full backpressure)."""
from __future__ import annotations

import numpy as np
import pytest

from sim import Port, Stream, TopPorts, run_stream
from sim.rtl import axis_ports, beats, build_module, unbeats

TRAFFIC = [(1.0, 1.0), (0.5, 0.5), (1.0, 0.05), (0.1, 1.0)]  # (p_valid, p_ready)


def test_fifo_passes_every_beat_in_order() -> None:
    exe = build_module("cs_fifo", axis_ports(13, 13), dict(WIDTH=13, DEPTH=3))
    data = np.random.default_rng(0).integers(0, 2**13, 500).tolist()
    for p_valid, p_ready in TRAFFIC:
        r = run_stream(exe, [data], expected=[len(data)], p_valid=p_valid, p_ready=p_ready, seed=3)
        assert r.outputs[0] == data
    r = run_stream(exe, [data], expected=[len(data)])
    assert r.out_cycles[0][-1] - r.out_cycles[0][0] == len(data) - 1  # one beat per cycle


def test_split_broadcasts_to_both_consumers() -> None:
    ports = TopPorts([Stream.axis("in", 9)], [
        Stream("out_tdata", Port("out_tvalid", 0), Port("out_tready", 0), 9),
        Stream("out_tdata", Port("out_tvalid", 1), Port("out_tready", 1), 9),
    ])
    exe = build_module("cs_split", ports, dict(WIDTH=9, N_OUT=2))
    data = np.random.default_rng(1).integers(0, 512, 400).tolist()
    for p_valid, p_ready in TRAFFIC + [(1.0, [1.0, 0.1])]:
        r = run_stream(exe, [data], expected=[len(data)] * 2, p_valid=p_valid, p_ready=p_ready, seed=5)
        assert r.outputs[0] == data and r.outputs[1] == data


@pytest.mark.parametrize("lanes_in,lanes_out", [(1, 4), (4, 2), (2, 3)])
def test_width_converter_keeps_element_order(lanes_in: int, lanes_out: int) -> None:
    eb = 5
    exe = build_module("cs_width_converter", axis_ports(lanes_in * eb, lanes_out * eb),
                       dict(IN_LANES=lanes_in, OUT_LANES=lanes_out, EB=eb))
    elems = np.random.default_rng(2).integers(0, 2**eb, 12 * 40).tolist()
    for p_valid, p_ready in TRAFFIC:
        r = run_stream(exe, [beats(elems, lanes_in, eb)], expected=[len(elems) // lanes_out],
                       p_valid=p_valid, p_ready=p_ready, seed=9)
        assert unbeats(r.outputs[0], lanes_out, eb) == elems
        if p_valid == 1.0 and p_ready == 1.0:  # full rate: the narrow side moves a beat every cycle
            narrow = r.in_cycles[0] if lanes_in < lanes_out else r.out_cycles[0]
            assert narrow[-1] - narrow[0] == len(narrow) - 1


def _cond_buffer(width: int, nbeats: int, depth: int, meta_bits: int):
    ports = TopPorts(
        [Stream.axis("in", width), Stream.axis("dec", meta_bits + 1)],
        [Stream.axis("out", width), Stream.axis("meta", meta_bits)],
    )
    return build_module("cs_cond_buffer", ports, dict(WIDTH=width, BEATS=nbeats, DEPTH=depth, META_BITS=meta_bits))


def _samples(rng: np.random.Generator, n: int, nbeats: int, width: int, meta_bits: int, drop: np.ndarray):
    feats = rng.integers(0, 2**width, (n, nbeats))
    meta = rng.integers(0, 2**meta_bits, n)
    dec = [(int(m) << 1) | int(d) for m, d in zip(meta, drop)]
    return feats, meta, dec


@pytest.mark.parametrize("nbeats,depth", [(5, 3), (1, 1), (1, 2), (4, 1), (3, 5)])
def test_cond_buffer_forwards_and_drops_by_decision(nbeats: int, depth: int) -> None:
    width, meta_bits = 11, 6
    exe = _cond_buffer(width, nbeats, depth, meta_bits)
    rng = np.random.default_rng(4 + nbeats * depth)
    n = 120
    drop = rng.random(n) < 0.5
    drop[:10] = True  # a run of exits, then a run of forwards
    drop[10:20] = False
    feats, meta, dec = _samples(rng, n, nbeats, width, meta_bits, drop)
    fwd_feats = feats[~drop].reshape(-1).tolist()
    fwd_meta = meta[~drop].tolist()
    # slow decisions fill the buffer (upstream must stall, never drop)
    for p_valid, p_ready in TRAFFIC + [([1.0, 0.02], 1.0), ([1.0, 1.0], [0.1, 1.0]), ([0.7, 0.3], [0.2, 0.5])]:
        r = run_stream(exe, [feats.reshape(-1).tolist(), dec], expected=[len(fwd_feats), len(fwd_meta)],
                       p_valid=p_valid, p_ready=p_ready, seed=6)
        assert not r.timeout
        assert r.outputs[0] == fwd_feats  # nothing lost, duplicated or altered; forwarded samples in order
        assert r.outputs[1] == fwd_meta
        assert len(r.in_cycles[0]) == n * nbeats and len(r.in_cycles[1]) == n


def test_cond_buffer_full_rate() -> None:
    """One beat per cycle in when every sample exits; out, one beat per cycle plus one meta
    cycle per sample when every sample continues (the buffer itself never sets the rate)."""
    width, nbeats, meta_bits, n = 9, 5, 4, 60
    for depth, beats_ in ((2, nbeats), (2, 1), (3, nbeats)):
        exe = _cond_buffer(width, beats_, depth, meta_bits)
        rng = np.random.default_rng(depth)
        feats, _, dec = _samples(rng, n, beats_, width, meta_bits, np.ones(n, dtype=bool))
        r = run_stream(exe, [feats.reshape(-1).tolist(), dec], expected=None)
        acc = r.in_cycles[0]
        assert len(acc) == n * beats_ and acc[-1] - acc[0] == len(acc) - 1, (depth, beats_)
        feats, meta, dec = _samples(rng, n, beats_, width, meta_bits, np.zeros(n, dtype=bool))
        r = run_stream(exe, [feats.reshape(-1).tolist(), dec], expected=[n * beats_, n])
        assert r.outputs[0] == feats.reshape(-1).tolist() and r.outputs[1] == meta.tolist()
        out = r.out_cycles[0]
        for s in range(n):  # a sample's beats leave back to back
            assert out[(s + 1) * beats_ - 1] - out[s * beats_] == beats_ - 1
        assert out[-1] - out[0] <= n * (beats_ + 1), (depth, beats_)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_cond_buffer_drop_behind_blocked_head_frees_at_once(depth: int) -> None:
    """Consumer never ready: forwarded samples keep their slots, but a dropped sample frees
    its slot as soon as its decision arrives, wherever it sits (no head-of-line blocking), so
    upstream keeps writing until `depth` forwarded samples fill every slot."""
    width, nbeats, meta_bits, n = 10, 4, 5, 80
    exe = _cond_buffer(width, nbeats, depth, meta_bits)
    # one forwarded sample at the head, then exits only: upstream at full rate (depth >= 3:
    # two slots free for the exits, each freed a few cycles after its last beat)
    if depth >= 3:
        drop = np.ones(n, dtype=bool)
        drop[0] = False
        feats, meta, dec = _samples(np.random.default_rng(1), n, nbeats, width, meta_bits, drop)
        r = run_stream(exe, [feats.reshape(-1).tolist(), dec], p_ready=[0.0, 1.0], expected=None)
        acc = r.in_cycles[0]
        assert len(acc) == n * nbeats and acc[-1] - acc[0] == len(acc) - 1
        assert r.outputs[0] == [] and r.outputs[1] == [int(meta[0])]
    # random decisions and gaps: Python reference of what a slot buffer accepts
    for seed in range(4):
        rng = np.random.default_rng(10 + seed)
        drop = rng.random(n) < 0.85
        feats, meta, dec = _samples(rng, n, nbeats, width, meta_bits, drop)
        fwd_idx = np.flatnonzero(~drop)
        accepted = n if len(fwd_idx) < depth else int(fwd_idx[depth - 1]) + 1
        r = run_stream(exe, [feats.reshape(-1).tolist(), dec], p_valid=[0.8, 0.5], p_ready=[0.0, 0.6],
                       expected=None, seed=seed, tail=400)
        assert len(r.in_cycles[0]) == accepted * nbeats, (seed, accepted)
        assert len(r.in_cycles[1]) == accepted  # every accepted sample's decision was taken
        assert r.outputs[0] == []
        assert r.outputs[1] == meta[~drop][:1].tolist()  # the head's meta; its beats never leave


def test_exit_merge_loses_and_duplicates_nothing() -> None:
    k, width = 3, 10
    ports = TopPorts(
        [Stream("in_tdata", Port("in_tvalid", i), Port("in_tready", i), width, lsb=i * width) for i in range(k)],
        [Stream.axis("out", width + 2)],
    )
    exe = build_module("cs_exit_merge", ports, dict(K=k, WIDTH=width))
    rng = np.random.default_rng(8)
    streams = [rng.integers(0, 2**width, m).tolist() for m in (150, 60, 90)]
    for p_valid, p_ready in TRAFFIC + [([1.0, 0.1, 0.5], 0.7)]:
        r = run_stream(exe, streams, expected=[sum(map(len, streams))], p_valid=p_valid, p_ready=p_ready, seed=1)
        got = [[] for _ in range(k)]
        for word in r.outputs[0]:
            got[word >> width].append(word & (2**width - 1))
        assert got == streams  # per exit: all beats, in order, none extra
    # all inputs busy: round robin serves them in turn
    r = run_stream(exe, [[1] * 30, [2] * 30, [3] * 30], expected=[90])
    assert [w >> width for w in r.outputs[0][:9]] == [1, 2, 0] * 3
