"""Sliding-window modules against numpy: cs_swu (window order, both modes:
SIMD dividing IC, and SIMD = KP*IC with KP kernel positions per beat; IPB input
pixels per beat), cs_conv (values bit for bit, cycles per sample exactly
OH*OW*(OC/PE)*(KH*KW*IC/SIMD), or IH*IW*IC/(in_lanes*IPB) when reading the input
is slower), cs_maxpool (overlapping and non-overlapping windows, floor mode)."""
from __future__ import annotations

import numpy as np
import pytest

from sim import run_stream
from sim.rtl import axis_ports, beats, build_module, unbeats
from stage_ir.kinds.rom import conv_weight_matrix, mvu_bias_hex, mvu_weight_hex


def windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> np.ndarray:
    """x [H, W, C] -> [OH, OW, KH, KW, C]: every window, zero padded (the SWU's output order)."""
    h, w, _ = x.shape
    xp = np.pad(x, ((ph, ph), (pw, pw), (0, 0)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    return np.stack([np.stack([xp[oy * sh:oy * sh + kh, ox * sw:ox * sw + kw] for ox in range(ow)])
                     for oy in range(oh)])


def test_swu_window_order_under_backpressure() -> None:
    # odd geometry: stride 2, padding 1, non-square image, 3 channel folds
    ic, ih, iw, k, s, p, simd, ib = 6, 7, 5, 3, 2, 1, 2, 4
    exe = build_module("cs_swu", axis_ports(simd * ib, simd * ib),
                       dict(IC=ic, IH=ih, IW=iw, KH=k, KW=k, SH=s, SW=s, PH=p, PW=p, SIMD=simd, IB=ib))
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2**ib, (6, ih, iw, ic))
    ref = np.concatenate([windows(xi, k, k, s, s, p, p).reshape(-1) for xi in x])
    _check_windows(exe, x, simd, simd, ib, ref, seed=11)


def _check_windows(exe, x: np.ndarray, in_lanes: int, simd: int, ib: int, ref: np.ndarray, seed: int) -> None:
    """The SWU's output equals `ref` under a free, a gappy and a back-pressured stream."""
    for p_valid, p_ready in [(1.0, 1.0), (0.4, 0.7), (1.0, 0.05)]:
        r = run_stream(exe, [beats(x.reshape(-1), in_lanes, ib)], expected=[len(ref) // simd],
                       p_valid=p_valid, p_ready=p_ready, seed=seed)
        assert not r.timeout
        np.testing.assert_array_equal(unbeats(r.outputs[0], simd, ib), ref)


# parallel window (SIMD = KP*IC): IC, IH, IW, KH, KW, S, P, SIMD
SWU_KP = {
    "ic1_k5_row_per_beat": (1, 8, 8, 5, 5, 1, 0, 5),
    "ic1_k3_whole_window_s2_pad1": (1, 7, 6, 3, 3, 2, 1, 9),
    "ic2_k2x3_across_rows_pad1": (2, 6, 7, 2, 3, 1, 1, 4),
    "ic3_k3_s2": (3, 9, 7, 3, 3, 2, 0, 9),
}


@pytest.mark.parametrize("name", list(SWU_KP))
def test_swu_parallel_window_order(name: str) -> None:
    ic, ih, iw, kh, kw, s, p, simd = SWU_KP[name]
    ib = 4
    exe = build_module("cs_swu", axis_ports(ic * ib, simd * ib),  # input: IC per beat, output: KP*IC
                       dict(IC=ic, IH=ih, IW=iw, KH=kh, KW=kw, SH=s, SW=s, PH=p, PW=p, SIMD=simd, IB=ib))
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2**ib, (6, ih, iw, ic))
    x[1] = 2**ib - 1  # all-ones sample: padding zeros stand out
    ref = np.concatenate([windows(xi, kh, kw, s, s, p, p).reshape(-1) for xi in x])
    _check_windows(exe, x, ic, simd, ib, ref, seed=13)


# IPB input pixels per beat (the network's first layer), SIMD = IC or KP*IC:
# IC, IH, IW, KH, KW, S, P, SIMD, IPB
SWU_IPB = {
    "kp1_ic1_ipb2_pad1": (1, 6, 8, 3, 3, 1, 1, 1, 2),
    "kp1_ic3_ipb4_s2": (3, 7, 8, 3, 3, 2, 0, 3, 4),
    "kp9_ic1_ipb4_s2_pad1": (1, 7, 8, 3, 3, 2, 1, 9, 4),
    "kp5_ic1_k5_ipb2": (1, 8, 8, 5, 5, 1, 0, 5, 2),
    "kp2_ic2_k2x3_ipb3_pad1": (2, 6, 6, 2, 3, 1, 1, 4, 3),  # IPB not a power of two: a true divide
    "kp9_ic1_ipb2_pad2_s3": (1, 9, 10, 3, 3, 3, 2, 9, 2),  # window partly past both edges
}


@pytest.mark.parametrize("name", list(SWU_IPB))
def test_swu_pixels_per_beat_window_order(name: str) -> None:
    ic, ih, iw, kh, kw, s, p, simd, ipb = SWU_IPB[name]
    ib = 4
    exe = build_module("cs_swu", axis_ports(ipb * ic * ib, simd * ib),  # IPB pixels of IC channels per beat
                       dict(IC=ic, IH=ih, IW=iw, KH=kh, KW=kw, SH=s, SW=s, PH=p, PW=p, SIMD=simd, IB=ib, IPB=ipb))
    rng = np.random.default_rng(17)
    x = rng.integers(0, 2**ib, (6, ih, iw, ic))
    x[2] = 2**ib - 1  # all-ones sample: padding zeros stand out
    ref = np.concatenate([windows(xi, kh, kw, s, s, p, p).reshape(-1) for xi in x])
    # beats of IPB*IC consecutive HWC elements: IPB pixels, the lowest first
    _check_windows(exe, x, ipb * ic, simd, ib, ref, seed=19)


# IC, IH, IW, K, S, P, SIMD: channel folds, stride 2 with a 5x5 kernel, the parallel window
SWU_ROWS = {"ic4_k3": (4, 12, 12, 3, 1, 1, 4), "ic2_k5_s2_fold2": (2, 12, 9, 5, 2, 0, 2),
            "ic1_kp9": (1, 10, 8, 3, 1, 0, 9)}


@pytest.mark.parametrize("name", list(SWU_ROWS))
def test_swu_holds_the_rows_the_timing_model_counts(name: str) -> None:
    """With its output never taken, cs_swu accepts exactly the input rows the timing model counts
    for its line buffer (the next sample's input queue and drain fraction of a conv stage rest on it)."""
    from stage_ir.kinds.window import swu_rows

    ic, ih, iw, k, s, p, simd = SWU_ROWS[name]
    ib, lanes = 4, min(simd, ic)
    exe = build_module("cs_swu", axis_ports(lanes * ib, simd * ib),
                       dict(IC=ic, IH=ih, IW=iw, KH=k, KW=k, SH=s, SW=s, PH=p, PW=p, SIMD=simd, IB=ib))
    x = np.random.default_rng(23).integers(0, 2**ib, (2, ih, iw, ic))
    r = run_stream(exe, [beats(x.reshape(-1), lanes, ib)], p_ready=0.0, max_cycles=5000)
    assert r.timeout and not r.outputs[0]  # held: nothing left, the input stalled
    assert len(r.in_cycles[0]) == swu_rows(k, s) * iw * ic // lanes


# IC, OC, IH, IW, K, S, P, PE, SIMD[, IPB]
CONV = {
    "pad1_fold": (4, 4, 8, 8, 3, 1, 1, 2, 2),
    "stride2_nf1": (2, 3, 9, 7, 3, 2, 0, 3, 2),
    # SIMD = KP*IC (parallel window)
    "kp5_ic1_k5": (1, 6, 12, 12, 5, 1, 0, 3, 5),
    "kp9_s2_pad1": (2, 4, 9, 7, 3, 2, 1, 2, 18),
    "kp3_pad1": (3, 4, 8, 8, 3, 1, 1, 4, 9),
    # input-bound: a whole window per cycle outruns the IH*IW input pixels
    "kp25_ic1_input_bound": (1, 6, 12, 12, 5, 1, 0, 6, 25),
    # IPB pixels per input beat (the network's first layer)
    "kp1_ipb2": (1, 4, 8, 8, 3, 1, 0, 4, 1, 2),
    "kp1_ic2_ipb4_pad1": (2, 4, 8, 8, 3, 1, 1, 2, 2, 4),
    "kp9_ipb2_no_longer_input_bound": (1, 6, 12, 12, 3, 1, 0, 6, 9, 2),  # 100 cycles, not 144
    "kp9_s2_pad1_ipb2": (2, 4, 9, 8, 3, 2, 1, 2, 18, 2),
    "kp25_ipb2_still_input_bound": (1, 6, 12, 12, 5, 1, 0, 6, 25, 2),  # 72 cycles to read, 64 to compute
    "kp25_ipb4": (1, 6, 12, 12, 5, 1, 0, 6, 25, 4),
}


@pytest.mark.parametrize("name", list(CONV))
def test_conv_matches_numpy_and_cycles(name: str) -> None:
    ic, oc, ih, iw, k, s, p, pe, simd, *rest = CONV[name]
    ipb = rest[0] if rest else 1
    in_lanes = min(simd, ic) * ipb  # SIMD = KP*IC takes IC elements per pixel, IPB pixels per beat
    ib, wb, ob, shift = 4, 4, 4, 4
    acc_bits = wb + ib + int(np.ceil(np.log2(k * k * ic))) + 2
    params = dict(IC=ic, OC=oc, IH=ih, IW=iw, KH=k, KW=k, SH=s, SW=s, PH=p, PW=p, PE=pe, SIMD=simd, IB=ib, WB=wb,
                  ACC_BITS=acc_bits, HAS_ACT=1, OB=ob, SHIFT=shift, WEIGHT_FILE="w.hex", BIAS_FILE="b.hex")
    exe = build_module("cs_conv", axis_ports(in_lanes * ib, pe * ob), dict(params, IPB=ipb) if rest else params)
    rng = np.random.default_rng(5)
    weight = rng.integers(-7, 8, (oc, ic, k, k))  # PyTorch [OC, IC, KH, KW]
    bias = rng.integers(-64, 64, oc)
    n = 6
    x = rng.integers(0, 16, (n, ih, iw, ic))  # HWC
    # reference conv: windows . weight (PyTorch order) + bias, requantised
    win = np.stack([windows(xi, k, k, s, s, p, p) for xi in x])  # [N, OH, OW, KH, KW, IC]
    acc = np.einsum("nyxhwc,ochw->nyxo", win, weight) + bias
    ref = np.clip(acc >> shift, 0, 2**ob - 1)
    oh, ow = ref.shape[1:3]
    mat = conv_weight_matrix(weight)
    files = {"w.hex": mvu_weight_hex(mat, pe, simd, wb), "b.hex": mvu_bias_hex(bias, pe, acc_bits)}
    beats_per_sample = oh * ow * oc // pe
    for p_valid, p_ready in [(1.0, 1.0), (0.5, 0.3)]:
        r = run_stream(exe, [beats(x.reshape(-1), in_lanes, ib)], expected=[n * beats_per_sample], files=files,
                       p_valid=p_valid, p_ready=p_ready, seed=2)
        assert not r.timeout
        np.testing.assert_array_equal(np.array(unbeats(r.outputs[0], pe, ob)).reshape(ref.shape), ref)
        if p_valid == 1.0 and p_ready == 1.0:
            # the window walk, or reading IH*IW pixels when that is slower (codesign.rtl.layer_unit)
            target = max(oh * ow * (oc // pe) * (k * k * ic // simd), ih * iw * ic // in_lanes)
            ends = np.array(r.out_cycles[0])[beats_per_sample - 1::beats_per_sample]
            assert np.all(np.diff(ends[1:]) == target), (np.diff(ends), target)  # steady state: exact


# C, IH, IW, K, S, LANES
POOL = {
    "2x2_s2_floor": (4, 6, 7, 2, 2, 2),
    "3x3_s1_overlap": (3, 5, 6, 3, 1, 1),
}


@pytest.mark.parametrize("name", list(POOL))
def test_maxpool_matches_numpy(name: str) -> None:
    c, ih, iw, k, s, lanes = POOL[name]
    eb = 5
    exe = build_module("cs_maxpool", axis_ports(lanes * eb, lanes * eb),
                       dict(C=c, IH=ih, IW=iw, KH=k, KW=k, SH=s, SW=s, LANES=lanes, EB=eb))
    rng = np.random.default_rng(9)
    x = rng.integers(0, 2**eb, (5, ih, iw, c))
    x[0] = 2**eb - 1  # all-max sample
    ref = np.stack([windows(xi, k, k, s, s, 0, 0).max(axis=(2, 3)) for xi in x])
    for p_valid, p_ready in [(1.0, 1.0), (0.5, 0.2)]:
        r = run_stream(exe, [beats(x.reshape(-1), lanes, eb)], expected=[ref.size // lanes],
                       p_valid=p_valid, p_ready=p_ready, seed=4)
        assert not r.timeout
        np.testing.assert_array_equal(np.array(unbeats(r.outputs[0], lanes, eb)).reshape(ref.shape), ref)
