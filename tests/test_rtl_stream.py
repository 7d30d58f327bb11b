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


def test_cond_buffer_forwards_and_drops_by_decision() -> None:
    width, nbeats, depth, meta_bits = 11, 5, 3, 6
    ports = TopPorts(
        [Stream.axis("in", width), Stream.axis("dec", meta_bits + 1)],
        [Stream.axis("out", width), Stream.axis("meta", meta_bits)],
    )
    exe = build_module("cs_cond_buffer", ports, dict(WIDTH=width, BEATS=nbeats, DEPTH=depth, META_BITS=meta_bits))
    rng = np.random.default_rng(4)
    n = 120
    feats = rng.integers(0, 2**width, (n, nbeats))
    drop = rng.random(n) < 0.5
    drop[:10] = True  # a run of exits, then a run of forwards
    drop[10:20] = False
    meta = rng.integers(0, 2**meta_bits, n)
    dec = [(int(m) << 1) | int(d) for m, d in zip(meta, drop)]
    fwd_feats = feats[~drop].reshape(-1).tolist()
    fwd_meta = meta[~drop].tolist()
    # slow decisions fill the buffer (upstream must stall, never drop)
    for p_valid, p_ready in TRAFFIC + [([1.0, 0.02], 1.0), ([1.0, 1.0], [0.1, 1.0])]:
        r = run_stream(exe, [feats.reshape(-1).tolist(), dec], expected=[len(fwd_feats), len(fwd_meta)],
                       p_valid=p_valid, p_ready=p_ready, seed=6)
        assert not r.timeout
        assert r.outputs[0] == fwd_feats
        assert r.outputs[1] == fwd_meta


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
