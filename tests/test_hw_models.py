"""hw_models: devices, per-layer costs, system throughput, estimate, DSE."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stage_ir.errors import UserError
from hw_models import rtl_cost
from hw_models.coefficients import coefficients
from hw_models.devices import add_devices, get_device, known_devices
from hw_models.dse import plot_pareto, run_dse
from hw_models.exit_subsets import chosen_design, reduced_design
from hw_models.estimate import estimate, plot_throughput_vs_exit_rate, render_markdown
from hw_models.geometry import folding_of, input_layer_name
from pydantic import TypeAdapter
from stage_ir import Design, Layer
from stage_ir.kinds import divisors
from hw_models.stages import stage_costs
from hw_models.system import infinite_buffer_throughput, reach_fractions, system_throughput


# ------------------------------------------------------------ small designs (docs/ir.md)
def _t(shape, bits=4, signed=False):
    return {"shape": shape, "bits": bits, "frac": 0, "signed": signed}


def _dense(name, i, o, act=True):
    return {"name": name, "kind": "dense", "input": _t([i]), "output": _t([o], 4 if act else 16, not act),
            "weight": f"{name}_w.npy", "bias": f"{name}_b.npy",
            "in_features": i, "out_features": o, "w_bits": 4, "w_frac": 3, "acc_bits": 16,
            "act": {"bits": 4, "frac": 2, "shift": 3} if act else None, "folding": {"pe": 1, "simd": 1}}


def _conv(name, ic, oc, h, w):
    return {"name": name, "kind": "conv2d", "input": _t([ic, h, w]), "output": _t([oc, h, w]),
            "weight": f"{name}_w.npy", "bias": f"{name}_b.npy",
            "in_channels": ic, "out_channels": oc, "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1],
            "w_bits": 4, "w_frac": 3, "acc_bits": 16, "act": {"bits": 4, "frac": 2, "shift": 3},
            "folding": {"pe": 1, "simd": 1}}


def _pool(name, c, h, w):
    return {"name": name, "kind": "maxpool2d", "input": _t([c, h, w]), "output": _t([c, h // 2, w // 2]),
            "kernel": [2, 2], "stride": [2, 2]}


def _flat(name, c, h, w):
    return {"name": name, "kind": "flatten", "input": _t([c, h, w]), "output": _t([c * h * w])}


_LAYER = TypeAdapter(Layer)


def L(layer: dict):
    """The typed IR layer (stage_ir.kinds) of a layer dict."""
    return _LAYER.validate_python(layer)


def D(design: dict) -> Design:
    """The typed IR of a design dict; stages get MACs, no features and their first layer's input
    when they do not say (only what hw_models reads matters here)."""
    stages = [{"macs": {"backbone": 0, "head": 0}, "features": None, "input": st["layers"][0]["input"], **st}
              for st in design["stages"]]
    return Design.model_validate({"schema": 1, "name": "d", "num_classes": 10, "clock_ns": 10.0, "device": "xc7z020",
                                  "macs_no_exit": 0, **design, "stages": stages})


def _head(n, pe=1, simd=1):
    """A one-stage design's classifier on n features, folded so that no width converter is needed."""
    return [dict(_dense("h", n, 10, act=False), folding={"pe": pe, "simd": simd})]


def cnn_design():
    return D(cnn_dict())


def cnn_dict():
    s0 = {"index": 0, "input": _t([1, 8, 8]),
          "layers": [_conv("s0_c0", 1, 8, 8, 8), _conv("s0_c1", 8, 8, 8, 8), _pool("s0_p", 8, 8, 8)],
          "features": _t([8, 4, 4]), "head": [_flat("s0_f", 8, 4, 4), _dense("s0_h", 128, 10, act=False)],
          "logits": _t([10], 16, True), "buffer_depth": 8}
    s1 = {"index": 1, "input": _t([8, 4, 4]),
          "layers": [_conv("s1_c0", 8, 16, 4, 4), _conv("s1_c1", 16, 16, 4, 4), _flat("s1_f", 16, 4, 4)],
          "features": None, "head": [_dense("s1_d", 256, 32), _dense("s1_h", 32, 10, act=False)],
          "logits": _t([10], 16, True)}
    return {"schema": 1, "name": "cnn", "num_classes": 10, "input": _t([1, 8, 8]), "stages": [s0, s1],
            "policy": {"kind": "max_softmax", "thresholds": [300], "tables": {"exits": [{"p": 8, "n": 32, "s": 0}]}},
            "clock_ns": 10.0, "device": "xc7z020"}


POINTS = [{"threshold": t, "exit_fractions": [f, 1 - f], "accuracy": a}
          for t, f, a in [(100, 0.2, 0.97), (200, 0.4, 0.965), (300, 0.6, 0.955), (400, 0.75, 0.94)]]


# ------------------------------------------------------------ devices
def test_devices_have_datasheet_totals():
    assert {"xc7a35t", "xc7z020", "xc7z045", "xczu3eg", "xczu7ev", "xcu250"} <= set(known_devices())
    z = get_device("XC7Z020")
    assert (z.lut, z.ff, z.dsp, z.bram36) == (53200, 106400, 220, 140)
    assert get_device("xczu7ev").uram == 96


def test_unknown_device_lists_known_ones():
    with pytest.raises(UserError, match="xc7z020"):
        get_device("xc9nope")


def test_add_devices():
    assert add_devices({"myboard": {"lut": 1000, "ff": 2000, "dsp": 10, "bram36": 5, "clock_ns": 8}}, "parts.yaml") == \
        ["myboard"]
    assert get_device("myboard").clock_ns == 8.0
    with pytest.raises(UserError, match="lacks"):
        add_devices({"x": {"lut": 1}}, "bad.yaml")


# ------------------------------------------------------------ per-layer models
def test_dense_and_conv_cycles_are_exact():
    d = _dense("d", 64, 32)
    assert float(rtl_cost.layer_cost(L(d), 4, 8).cycles) == (32 / 4) * (64 / 8)
    c = _conv("c", 8, 16, 6, 6)
    assert float(rtl_cost.layer_cost(L(c), 4, 2).cycles) == 6 * 6 * (16 / 4) * (3 * 3 * 8 / 2)


def test_conv_parallel_window_folding():
    """SIMD = KP*IC (KP | KH*KW) is legal for a conv: a 1-channel first conv is not bound to
    OH*OW*KH*KW cycles; its input (IC per beat) bounds it at IH*IW."""
    layer = dict(_conv("c1", 1, 6, 28, 28), kernel=[5, 5], padding=[0, 0], output=_t([6, 24, 24]))
    conv = L(layer)
    assert conv.geometry.simds == (1, 5, 25)
    assert float(rtl_cost.layer_cost(conv, 1, 1).cycles) == 24 * 24 * 6 * 25
    assert float(rtl_cost.layer_cost(conv, 6, 5).cycles) == 24 * 24 * 5
    assert float(rtl_cost.layer_cost(conv, 6, 25).cycles) == 28 * 28  # input-bound
    assert folding_of(L(dict(layer, folding={"pe": 6, "simd": 25}))) == (6, 25)
    with pytest.raises(UserError, match="one of 1, 5, 25"):
        folding_of(L(dict(layer, folding={"pe": 6, "simd": 3})))
    # the read lanes cost: more LUT/FF than one position per beat, same MVU-side rule otherwise
    one, five = rtl_cost.layer_cost(conv, 6, 1), rtl_cost.layer_cost(conv, 6, 5)
    assert float(five.lut) > float(one.lut) and float(five.ff) > float(one.ff)
    # the stream feeding it stays one pixel (IC elements) per beat: no width converter from PE=1
    design = D({"input": _t([1, 28, 28]), "stages": [
        {"index": 0, "layers": [dict(layer, folding={"pe": 6, "simd": 25}), _flat("f", 6, 24, 24)],
         "head": _head(6 * 24 * 24, simd=6), "logits": _t([10], 16, True)}]})
    blocks = [b.kind for st_ in stage_costs(design, "rtl") for b in st_.blocks]
    assert "dwc" not in blocks


def _mnist_conv(name="c1", k=5, stride=1):
    oh = (28 - k) // stride + 1
    return dict(_conv(name, 1, 6, 28, 28), kernel=[k, k], stride=[stride, stride], padding=[0, 0],
                output=_t([6, oh, oh]))


def test_input_pixels_per_beat_rule():
    """IPB: the smallest divisor of IW (at most 8) whose IH*IW/IPB read beats fit the window walk."""
    def input_pixels_per_beat(layer, pe, simd):
        return L(layer).pixels_per_beat(pe, simd)

    c5, c3 = _mnist_conv(k=5), _mnist_conv(k=3)
    assert input_pixels_per_beat(c5, 6, 25) == 2    # walk 576 < 784 reads; 392 fit
    assert input_pixels_per_beat(c3, 6, 9) == 2     # walk 676
    assert input_pixels_per_beat(c5, 6, 5) == 1     # walk 2880: reading is not the bound
    assert input_pixels_per_beat(c5, 1, 1) == 1
    s2 = _mnist_conv(k=3, stride=2)                 # 13x13 = 169 output pixels
    assert input_pixels_per_beat(s2, 6, 9) == 7     # 784/4 = 196 > 169; 784/7 = 112 fits
    s3 = _mnist_conv(k=5, stride=3)                 # 8x8 = 64: not even IPB = 7 (112 beats) reaches it
    assert input_pixels_per_beat(s3, 6, 25) == 7    # the largest divisor of 28 up to the cap
    rgb = dict(_conv("rgb", 4, 8, 16, 16), padding=[0, 0], output=_t([8, 14, 14]))
    assert input_pixels_per_beat(rgb, 8, 2) == 1    # SIMD < IC: a pixel takes several beats (CF = 2)
    assert input_pixels_per_beat(rgb, 8, 36) == 2   # KP*IC: walk 196 < 256 reads
    assert input_pixels_per_beat(_dense("d", 64, 10), 10, 64) == 1
    # numpy: the same as element-wise
    pe = np.array([1, 2, 3, 6, 6, 6])
    simd = np.array([1, 5, 25, 25, 5, 1])
    assert list(input_pixels_per_beat(c5, pe, simd)) == [input_pixels_per_beat(c5, p, s) for p, s in zip(pe, simd)]


def test_only_the_first_layer_reads_several_pixels_per_beat():
    """The network's first conv gets IPB > 1 (cycles and model), a later conv that would qualify does not."""
    first = dict(_mnist_conv("c1", k=5), folding={"pe": 6, "simd": 25})
    second = dict(_conv("c2", 6, 6, 24, 24), kernel=[5, 5], padding=[0, 0], output=_t([6, 20, 20]),
                  folding={"pe": 6, "simd": 150})
    design = D({"input": _t([1, 28, 28]), "stages": [
        {"index": 0, "layers": [first, second, _flat("f", 6, 20, 20)], "head": _head(6 * 20 * 20, simd=6),
         "logits": _t([10], 16, True)}]})
    assert input_layer_name(design.stages) == "c1"
    cycles = {b.name: float(b.cost.cycles) for st_ in stage_costs(design, "rtl") for b in st_.blocks}
    assert cycles["c1"] == 576                                          # 784 at one pixel per beat
    first, second = L(first), L(second)
    assert float(rtl_cost.layer_cost(first, 6, 25).cycles) == 784
    assert cycles["c2"] == 24 * 24                                     # input-bound, IPB 1
    ipb = int(second.pixels_per_beat(6, 150))  # what the first layer's rule would give it
    assert float(rtl_cost.layer_cost(second, 6, 150, ipb=ipb).cycles) == 400
    # the DSE's folding helper reaches the compute bound only for the first layer
    from hw_models.exit_subsets import fold_for_ii
    assert fold_for_ii(first, 576, first=True) == {"pe": 6, "simd": 25}
    assert float(rtl_cost.layer_cost(first, **fold_for_ii(first, 576)).cycles) == 784  # most lanes, still 784


def test_small_products_go_to_dsp_one_per_lane():
    assert float(rtl_cost.layer_cost(L(_dense("d", 64, 32)), 8, 16).dsp) == 8 * 16
    wide = dict(_dense("w", 64, 32), w_bits=8, input=_t([64], 30))
    assert float(rtl_cost.layer_cost(L(wide), 2, 2).dsp) == 0  # does not fit a DSP48: LUT multipliers


@settings(max_examples=60, deadline=None)
@given(mw=st.sampled_from([8, 12, 16, 64, 96]), mh=st.sampled_from([4, 10, 16, 32]),
       conv=st.booleans(), data=st.data())
def test_more_lanes_never_slower_nor_cheaper(mw, mh, conv, data):
    """FF, DSP and the LUTs beside the weight ROM never drop.  BRAM may: a PE's weight
    memory that falls below the block threshold moves into LUTs (and LUTs rise), as yosys
    would map it; and the ROM's own LUTs may: a LUT ROM is a LUT6 column per word bit, so
    96 x 8 bits take 16 LUTs where 64 x 12 bits take 12."""
    layer = L(_conv("c", mw, mh, 4, 4) if conv else _dense("d", mw, mh))
    fn = rtl_cost.layer_cost
    pes, simds = divisors(mh), list(layer.geometry.simds)  # conv: also KP*IC (parallel window)
    pe = data.draw(st.sampled_from(pes))
    simd = data.draw(st.sampled_from(simds))
    pe2 = data.draw(st.sampled_from([p for p in pes if p >= pe]))
    simd2 = data.draw(st.sampled_from([s for s in simds if s >= simd]))
    a, b = fn(layer, pe, simd), fn(layer, pe2, simd2)
    assert float(b.cycles) <= float(a.cycles)
    for key in ("ff", "dsp"):
        assert float(getattr(b, key)) >= float(getattr(a, key)) - 1e-9, key
    assert float(b.lut) - _rom_lut(layer, pe2, simd2) >= float(a.lut) - _rom_lut(layer, pe, simd) - 1e-9


def _rom_lut(layer, pe: int, simd: int) -> float:
    from stage_ir.kinds.matrix import storage_cost
    geo = layer.geometry
    bits, word = geo.mh * geo.mw * geo.w_bits, pe * simd * geo.w_bits
    return float(storage_cost(bits, word, 1, coefficients()["rtl"], words=bits / word)[0])


@settings(max_examples=40, deadline=None)
@given(f=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=4), k=st.integers(0, 3),
       bump=st.floats(0.0, 0.5), ii=st.lists(st.integers(1, 500), min_size=4, max_size=4))
def test_throughput_never_rises_when_a_reach_fraction_rises(f, k, bump, ii):
    q = np.array(sorted(f, reverse=True))
    q[0] = 1.0
    k = min(k, len(q) - 1)
    q2 = q.copy()
    q2[k] = min(1.0, q2[k] + bump)
    ii = np.array(ii[:len(q)], dtype=float)
    assert infinite_buffer_throughput(ii, q2) <= infinite_buffer_throughput(ii, q) + 1e-15


def test_resources_add_up_across_layers_and_stages():
    design = cnn_design()
    stages = stage_costs(design)
    est = estimate(design, ["xc7z020"], [0.5, 0.5])
    for key in ("lut", "ff", "dsp", "bram"):
        per_block = sum(b[key] for s in est["stages"] for b in s["layers"])
        per_stage = sum(s[key] for s in est["stages"])
        assert per_block == pytest.approx(per_stage) == pytest.approx(est["totals"][key])
        assert est["devices"]["xc7z020"][key] == pytest.approx(est["totals"][key])
    assert [s["ii_cycles"] for s in est["stages"]] == [sc.ii for sc in stages]


def test_hls_backend_is_marked_unchecked():
    est = estimate(cnn_design(), ["xc7z020"], [0.5, 0.5], backend="hls")
    assert est["checked_against_synthesis"] is False and "NOT" in est["note"]
    assert est["stages"][0]["layers"][0]["cycles"] == 64  # io_stream conv, RF 1: one pixel per cycle


# ------------------------------------------------------------ system
def test_reach_fractions_and_errors():
    assert reach_fractions([0.5, 0.3, 0.2]).tolist() == pytest.approx([1.0, 0.5, 0.2])
    with pytest.raises(UserError, match="sum"):
        reach_fractions([0.5, 0.3])
    with pytest.raises(UserError):
        system_throughput([1, 2], [0.2, 0.3, 0.5])


def test_throughput_formula():
    assert system_throughput([10, 30], [0.75, 0.25]) == pytest.approx(0.1)
    assert system_throughput([10, 50], [0.75, 0.25]) == pytest.approx(1 / 12.5)


# ------------------------------------------------------------ estimate
def test_estimate_keys_markdown_and_plot(tmp_path):
    est = estimate(cnn_design(), ["xc7z020", "xczu7ev"], [0.6, 0.4], burst_length=8)
    json.dumps(est)
    for part in ("xc7z020", "xczu7ev"):
        d = est["devices"][part]
        assert {"lut", "ff", "dsp", "bram", "throughput_samples_per_cycle"} <= set(d)
    assert [e["index"] for e in est["exits"]] == [0, 1]
    assert est["exits"][0]["latency_cycles"] < est["exits"][1]["latency_cycles"]
    assert "| xc7z020 |" in render_markdown(est)
    png = plot_throughput_vs_exit_rate(cnn_design(), [0.6, 0.4], tmp_path / "t.png")
    assert png.stat().st_size > 1000


# ------------------------------------------------------------ DSE
def test_dse_outputs_and_gain(tmp_path):
    r = run_dse(cnn_design(), "xc7z020", 0.7, exit_points=POINTS, min_accuracy=0.95,
                burst_length=8, final_accuracy=0.97)
    json.dumps(r)
    for side in ("chosen", "baseline"):
        assert {"throughput_samples_per_cycle", "lut", "dsp", "bram", "accuracy"} <= set(r[side])
        assert r[side]["dsp"] <= 0.7 * 220 and r[side]["lut"] <= 0.7 * 53200
    assert r["chosen"]["accuracy"] >= 0.95
    assert r["predicted_gain"] == pytest.approx(r["chosen"]["throughput_samples_per_cycle"]
                                                / r["baseline"]["throughput_samples_per_cycle"])
    assert r["predicted_gain"] > 1.0
    assert r["pareto"] and r["points_per_second"] > 0
    assert plot_pareto(r, tmp_path / "dse.png").stat().st_size > 1000
    new = chosen_design(cnn_design(), r["chosen"])
    assert new.stages[0].layers[0].folding.model_dump(include={"pe", "simd"}) == r["chosen"]["folding"]["s0_c0"]
    assert len(new.stages) == len(r["chosen"]["exits_kept"])


def test_dse_resources_objective_meets_target():
    r = run_dse(cnn_design(), "xc7z020", 0.7, objective="resources", exit_points=POINTS, throughput_target=1e-3)
    assert r["chosen"]["throughput_samples_per_cycle"] >= 1e-3 * 0.99


def test_dse_user_errors():
    with pytest.raises(UserError, match="budget"):
        run_dse(cnn_design(), "xc7z020", 1.5, exit_points=POINTS)
    with pytest.raises(UserError, match="unknown device"):
        run_dse(cnn_design(), "xc0", 0.7, exit_points=POINTS)
    big = cnn_dict()
    big["stages"][1]["head"][0] = dict(_dense("s1_d", 256, 32), input=_t([256], 30))  # LUT multipliers
    with pytest.raises(UserError, match="does not fit xc7a35t"):
        run_dse(D(big), "xc7a35t", 0.01, exit_points=POINTS)


@settings(max_examples=40, deadline=None)
@given(a=st.integers(1, 8), b=st.integers(1, 12), depth=st.integers(1, 16), c=st.floats(0.05, 0.9),
       dc=st.floats(0.01, 0.1), burst=st.sampled_from([1.0, 4.0, 32.0]))
def test_finite_buffer_throughput_never_rises_with_more_continuing(a, b, depth, c, dc, burst):
    from hw_models.buffer_chain import boundary_throughput
    assert boundary_throughput(a, b, depth, c + dc, burst) <= boundary_throughput(a, b, depth, c, burst) + 1e-12


def test_hls_strategies_and_reuse_factor():
    from hw_models import hls_cost
    layer = L(_dense("d", 64, 32))
    lat1, lat8 = hls_cost.layer_cost(layer, 1, "latency"), hls_cost.layer_cost(layer, 8, "latency")
    res8 = hls_cost.layer_cost(layer, 8, "resource")
    assert float(lat8.cycles) == 8 * float(lat1.cycles)          # II = RF
    assert float(lat8.lut) < float(lat1.lut)                     # RF x fewer multipliers
    assert float(res8.bram) > 0 and float(lat8.bram) == 0        # Resource keeps weights in BRAM
    wide = L(dict(_dense("d", 64, 32), w_bits=8, input=_t([64], 8)))
    assert float(hls_cost.layer_cost(wide, 4).dsp) == 64 * 32 / 4     # 8x8 products on DSPs


def test_deeper_buffer_costs_more():
    small = estimate(cnn_design(), ["xc7z020"], [0.5, 0.5], buffer_depths=[2])
    large = estimate(cnn_design(), ["xc7z020"], [0.5, 0.5], buffer_depths=[512])
    assert large["totals"]["bram"] > small["totals"]["bram"]


def _three_stage_design():
    return D(_three_stage_dict())


def _three_stage_dict():
    d = cnn_dict()
    s0, s1 = d["stages"]
    mid = {"index": 1, "input": _t([8, 4, 4]), "layers": [_conv("m_c0", 8, 8, 4, 4)], "features": _t([8, 4, 4]),
           "head": [_flat("m_f", 8, 4, 4), _dense("m_h", 128, 10, act=False)], "logits": _t([10], 16, True),
           "buffer_depth": 8}
    policy = {**d["policy"], "thresholds": [300, 200], "tables": {"exits": [{"p": 8, "n": 32, "s": 0}] * 2}}
    return {**d, "stages": [s0, mid, dict(s1, index=2)], "policy": policy}


def test_dse_can_drop_exits():
    points = [{"threshold": [t, t], "exit_fractions": [f, g, 1 - f - g], "accuracy": a}
              for t, f, g, a in [(1, 0.3, 0.2, 0.97), (2, 0.5, 0.2, 0.96), (3, 0.7, 0.1, 0.94)]]
    r = run_dse(_three_stage_design(), "xc7z020", 0.7, exit_points=points, min_accuracy=0.95)
    kept = r["chosen"]["exits_kept"]
    assert kept[-1] == 2 and len(r["chosen"]["buffer_depths"]) == len(kept) - 1
    assert len(r["chosen"]["exit_fractions"]) == len(kept)
    assert r["predicted_gain"] >= 1.0


def test_an_exit_that_buys_no_throughput_is_dropped():
    """A throughput tie (within the event model's noise) goes to the no-exit design when it is as accurate."""
    from hw_models.dse import _exit_buys_nothing

    base = {"exits_kept": [1], "throughput_samples_per_cycle": 1 / 784, "accuracy": 0.8826}
    tie = {"exits_kept": [0, 1], "throughput_samples_per_cycle": 1 / 784, "accuracy": 0.8750}
    assert _exit_buys_nothing(tie, base)
    assert not _exit_buys_nothing(dict(tie, throughput_samples_per_cycle=1.05 / 784), base)  # a real gain
    assert not _exit_buys_nothing(dict(tie, accuracy=0.89), base)  # equal speed, better accuracy: keep it
    assert not _exit_buys_nothing(base, base)


def test_a_dropped_exit_is_not_in_the_chosen_design():
    """Dropping exit 1 of three merges stage 1 into stage 2: its backbone first, its head and buffer gone,
    MACs of both backbones, the kept stage's buffer depth as chosen; the cost model sees the same stages."""
    from hw_models.stages import stage_costs

    d = _three_stage_dict()
    for k, st in enumerate(d["stages"]):
        st["macs"] = {"backbone": 100 * (k + 1), "head": 10 * (k + 1)}
    design = D(d).as_dict()
    folding = {"s0_c0": {"pe": 2, "simd": 1}, "m_c0": {"pe": 4, "simd": 2}}
    chosen = {"exits_kept": [0, 2], "folding": folding, "buffer_depths": [4]}
    new = chosen_design(D(design), chosen)
    s0, s1 = new.as_dict()["stages"]
    assert [s0["index"], s1["index"]] == [0, 1] and [s0["export_stages"], s1["export_stages"]] == [[0], [1, 2]]
    assert [l["name"] for l in s1["layers"]] == ["m_c0"] + [l["name"] for l in design["stages"][2]["layers"]]
    assert s1["head"] == design["stages"][2]["head"] and s1["input"] == design["stages"][1]["input"]
    assert s1["macs"] == {"backbone": 500, "head": 30} and s0["buffer_depth"] == 4
    assert s1["layers"][0]["folding"] == {"pe": 4, "simd": 2, "pixels_per_beat": 1}
    names = {l.name for l in new.layers()}
    assert not names & {l["name"] for l in design["stages"][1]["head"]}  # the dropped head is gone
    assert len(stage_costs(new, "rtl")) == 2
    one = chosen_design(D(design), {"exits_kept": [2], "folding": {}, "buffer_depths": []})
    assert [st.export_stages for st in one.stages] == [[0, 1, 2]] and one.stages[0].buffer_depth is None


def test_threshold_unit_cost_reads_each_exits_real_table():
    """The threshold unit's exp-table LUTs follow the exit's table (policies.make_tables writes
    lower-case keys per exit under tables["exits"][k]); an earlier model read invented top-level
    keys and always costed N = 64 entries."""
    def thr_lut(n):
        d = cnn_dict()
        d["policy"]["tables"] = {"exits": [{"p": 8, "n": n, "s": 0}]}
        blocks = {b.name: b for sc in stage_costs(D(d)) for b in sc.blocks}
        return float(blocks["s0_threshold"].cost.lut)

    assert thr_lut(4) < thr_lut(64) < thr_lut(256)
    assert thr_lut(256) - thr_lut(64) == (256 - 64) * 9 / 64  # N (P + 1) bits at 64 per LUT


def test_a_reduced_design_keeps_the_kept_exits_policy():
    """Dropping exit 0 makes original exit 1 stage 0: it takes exit 1's threshold and table,
    so the cost model (which indexes them by stage) costs exit 1's threshold unit."""
    d = _three_stage_dict()
    d["policy"]["tables"] = {"exits": [{"p": 8, "n": 4, "s": 0}, {"p": 8, "n": 256, "s": 0}]}
    design = D(d)
    reduced = reduced_design(design, [1])
    assert reduced.policy.thresholds == [200]
    assert reduced.policy.tables["exits"] == [{"p": 8, "n": 256, "s": 0}]
    s0 = {b.name: b for b in stage_costs(reduced)[0].blocks}["s0_threshold"]
    own = {b.name: b for b in stage_costs(design)[1].blocks}["s1_threshold"]
    assert float(s0.cost.lut) == float(own.cost.lut)


def test_dse_and_stage_model_cost_the_exit_merge_alike():
    """The DSE's early-exit block resources and the stage model count the same exit merge, whatever
    the number of classes (the DSE once assumed 8 bits of class and exit index: too many for 4 classes)."""
    import numpy as np

    from hw_models.dse_tables import _ee_resources, _groups

    d = cnn_dict()
    d["num_classes"] = 4
    for st in d["stages"]:
        st["head"][-1] = dict(_dense(st["head"][-1]["name"], st["head"][-1]["in_features"], 4, act=False))
        st["logits"] = _t([4], 16, True)
    design = D(d)
    merge = {b.name: b for sc in stage_costs(design) for b in sc.blocks}["exit_merge"]
    last = _groups(design, (0,))[-1]
    lut, ff = _ee_resources(design, last, np.array([1]), True)[0][:2]
    assert (lut, ff) == (float(merge.cost.lut), float(merge.cost.ff))


# ------------------------------------------------------------ decisions in design.json (hw_models.decisions)
def test_decide_writes_every_decision_the_generator_reads():
    """decide: each stage's threshold form and (early exits) decision FIFO depth, each compute layer's
    input pixels per beat, all by the rules the DSE costs with."""
    from hw_models.stages import decide

    undecided = _three_stage_design()
    assert not undecided.decided
    design = decide(undecided)
    assert design.decided and not undecided.decided  # a copy
    assert [st.hardware.decision_fifo_depth for st in design.stages] == [9, 9, None]  # buffer_depth 8 + 1
    costs = stage_costs(undecided, "rtl")
    assert [st.hardware.threshold_form for st in design.stages] == [
        "pipelined" if sc.parallel_threshold else "sequential" for sc in costs]
    deeper = decide(undecided, buffer_depths=[3, 20])
    assert [st.hardware.decision_fifo_depth for st in deeper.stages] == [4, 21, None]
    assert [st.buffer_depth for st in deeper.stages] == [3, 20, None]


def test_the_stored_threshold_form_is_what_the_model_costs():
    """A hand-edited form in design.json is costed as written (the RTL generator builds it as written):
    the model never re-derives it."""
    from hw_models.stages import decide

    design = decide(_three_stage_design())
    forms = [st.hardware.threshold_form for st in design.stages]
    flipped = design.model_copy(deep=True)
    for stage in flipped.stages:
        stage.hardware.threshold_form = "sequential" if stage.hardware.threshold_form == "pipelined" else "pipelined"
    before, after = stage_costs(design, "rtl"), stage_costs(flipped, "rtl")
    assert [sc.parallel_threshold for sc in before] == [f == "pipelined" for f in forms]
    assert [sc.parallel_threshold for sc in after] == [f != "pipelined" for f in forms]
    lut = lambda costs, k: float({b.name: b for b in costs[k].blocks}[f"s{k}_threshold"].cost.lut)
    assert all(lut(before, k) != lut(after, k) for k in range(3))


def test_decisions_are_checked_on_load():
    """All stages decided or none; a decision FIFO only where there is a conditional buffer;
    several pixels per beat only on the first layer, only where its window walk allows."""
    from hw_models.stages import decide

    d = decide(_three_stage_design()).as_dict()
    D(d)  # as decided: valid
    partial = json.loads(json.dumps(d))
    partial["stages"][1]["hardware"] = None
    with pytest.raises(ValueError, match=r"stages \[1\] have no hardware decisions"):
        D(partial)
    last = json.loads(json.dumps(d))
    last["stages"][2]["hardware"]["decision_fifo_depth"] = 4
    with pytest.raises(ValueError, match="decision_fifo_depth belongs to early exits only"):
        D(last)

    def one_stage(layers, head_in):
        return {"input": layers[0]["input"], "stages": [
            {"index": 0, "layers": layers, "head": _head(head_in), "logits": _t([10], 16, True)}]}

    def with_ipb(layer, ipb):
        return dict(layer, folding={**layer["folding"], "pixels_per_beat": ipb})

    c1 = dict(_mnist_conv("c1", k=5), folding={"pe": 6, "simd": 25})   # the rule gives it 2
    assert D(one_stage([with_ipb(c1, 2), _flat("f", 6, 24, 24)], 6 * 24 * 24)).layers()[0].folding.pixels_per_beat == 2
    with pytest.raises(ValueError, match="layer c1: pixels_per_beat 3 is not one of"):  # 3 does not divide IW = 28
        D(one_stage([with_ipb(c1, 3), _flat("f", 6, 24, 24)], 6 * 24 * 24))
    c2 = dict(_conv("c2", 6, 6, 24, 24), folding={"pe": 6, "simd": 54})
    with pytest.raises(ValueError, match="layer c2: pixels_per_beat 2: only the network's first layer"):
        D(one_stage([c1, with_ipb(c2, 2), _flat("f", 6, 24, 24)], 6 * 24 * 24))
    with pytest.raises(ValueError, match="layer d: pixels_per_beat 2: a dense layer"):
        D(one_stage([with_ipb(_dense("d", 64, 32), 2)], 32))
