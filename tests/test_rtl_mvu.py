"""cs_mvu (dense layer) against numpy: values bit for bit, cycles exactly (MW/SIMD)*(MH/PE)."""
from __future__ import annotations

import numpy as np
import pytest

from sim import run_stream
from sim.rtl import axis_ports, beats, build_module, unbeats
from stage_ir.kinds.rom import mvu_bias_hex, mvu_weight_hex

# name: MW, MH, PE, SIMD, IB, IN_SIGNED, WB, ACC_BITS, HAS_ACT, OB, SHIFT
CONFIGS = {
    "folded_act": (24, 12, 3, 4, 4, 0, 4, 17, 1, 4, 3),
    "unfolded_logits": (8, 6, 6, 8, 5, 1, 3, 14, 0, 0, 0),
    "serial_left_shift": (6, 4, 1, 1, 3, 1, 5, 14, 1, 6, -2),
}


def reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, has_act: int, ob: int, shift: int) -> np.ndarray:
    acc = x.astype(np.int64) @ w.T.astype(np.int64) + b
    if not has_act:
        return acc
    shifted = acc >> shift if shift >= 0 else acc << -shift
    return np.clip(shifted, 0, 2**ob - 1)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_mvu_matches_numpy_and_cycles(name: str) -> None:
    mw, mh, pe, simd, ib, in_signed, wb, acc_bits, has_act, ob, shift = CONFIGS[name]
    out_bits = ob if has_act else acc_bits
    params = dict(MW=mw, MH=mh, PE=pe, SIMD=simd, IB=ib, IN_SIGNED=in_signed, WB=wb, ACC_BITS=acc_bits,
                  HAS_ACT=has_act, OB=max(ob, 1), SHIFT=shift, WEIGHT_FILE="w.hex", BIAS_FILE="b.hex")
    exe = build_module("cs_mvu", axis_ports(simd * ib, pe * out_bits), params)
    rng = np.random.default_rng(len(name))
    wmax = 2 ** (wb - 1) - 1  # narrow range
    w = rng.integers(-wmax, wmax + 1, (mh, mw))
    w[0, :] = wmax  # extreme rows: largest positive and negative sums
    w[-1, :] = -wmax
    b = rng.integers(-(2 ** (acc_bits - 4)), 2 ** (acc_bits - 4), mh)
    lo, hi = (-(2 ** (ib - 1)), 2 ** (ib - 1)) if in_signed else (0, 2**ib)
    n = 40
    x = rng.integers(lo, hi, (n, mw))
    x[0] = hi - 1
    x[1] = lo
    ref = reference(x, w, b, has_act, ob, shift)
    files = {"w.hex": mvu_weight_hex(w, pe, simd, wb), "b.hex": mvu_bias_hex(b, pe, acc_bits)}
    sf, nf = mw // simd, mh // pe
    for p_valid, p_ready in [(1.0, 1.0), (0.6, 0.5), (1.0, 0.05)]:
        r = run_stream(exe, [beats(x.reshape(-1), simd, ib)], expected=[n * nf], files=files,
                       p_valid=p_valid, p_ready=p_ready, seed=7)
        assert not r.timeout
        got = np.array(unbeats(r.outputs[0], pe, out_bits, signed=not has_act)).reshape(n, mh)
        np.testing.assert_array_equal(got, ref)
        if p_valid == 1.0 and p_ready == 1.0:
            last_beats = np.array(r.out_cycles[0])[nf - 1::nf]
            assert set(np.diff(last_beats).tolist()) == {sf * nf}, "steady state must be SF*NF cycles/sample"
