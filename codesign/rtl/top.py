"""The top builder: the whole early-exit dataflow (layers, exit paths, buffers, merge) as a netlist."""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Sequence

import numpy as np

import stage_ir
from stage_ir import policies as pol
from hw_models.geometry import input_layer_name
from hw_models.rtl_cost import cond_buffer_slots, threshold_pipe_latency
from stage_ir import LayerKind, MatrixLayer
from stage_ir.errors import UserError
from stage_ir.kinds.base import MAX_ACT_BITS, RtlUnit
from codesign.rtl.netlist import Netlist, Sig, TopPort, _clk, _clog2, _io, _signed_bits


TAG_BITS = 16  # sample tags wrap after 65536 samples (verify unwraps them in order)
LAYER_FIFO_DEPTH = 2  # after every MVU: cuts its combinational ready path (docs/rtl.md)
ID_FIFO_DEPTH = 4  # ids of samples inside a threshold unit (at most two) plus slack
GLUE = ("cs_sample_tagger", "cs_join", "cs_exit_decide", "cs_sample_count")


@dataclasses.dataclass
class Cursor:
    """The stream between two layers and what it carries."""

    sig: Sig
    lanes: int
    bits: int
    elements: int
    chw: tuple[int, ...] | None = None  # set by a flatten of [C, H, W]: the next dense permutes its columns


def layer_unit(design: stage_ir.Design, layer: LayerKind, stage: int, in_lanes: int = 1,
               chw: Sequence[int] | None = None) -> RtlUnit | None:
    """The library module, parameters and ROM files of one layer (its kind's `rtl_unit`,
    stage_ir.kinds); None for a layer without hardware (a flatten)."""
    return layer.rtl_unit(design.array, f"layer {layer.name} (stage {stage})", in_lanes, chw)


def input_lanes(layer: MatrixLayer) -> int:
    """Elements per beat a compute layer's input stream carries at its folding and pixels per
    beat (MatrixLayer.in_lanes)."""
    fold = layer.folding
    return int(layer.in_lanes(fold.pe, fold.simd, fold.pixels_per_beat))


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
            unit = layer_unit(self.design, layer, stage, cur.lanes, cur.chw)
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
        kind, table = design.exit_unit(k)  # final exit: margin >= 0 is the argmax, always exits
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
            own, files = pol.get(kind).rtl_params(table, k)
            params.update(own)
            self.files.update(files)
        params.update(CNT_BITS=self.cnt_bits, FIRST_EXIT=int(k == 0))
        out = self.net.stream(f"exit{k}_tu_out", self.cnt_bits + self.cls_bits + 1)
        # the form is the design's decision (hw_models.decide: the pipelined unit where the
        # sequential one would be slower than the stage's compute layers)
        parallel = design.stages[k].hardware.threshold_form == "pipelined"
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
        if not design.decided:
            raise UserError(f"{design.root / stage_ir.DESIGN_FILE} holds no hardware decisions (threshold-unit "
                            f"forms, decision FIFO depths, pixels per beat); rerun `codesign calibrate {design.root}`")
        # the layer s_axis feeds: its input lanes (and pixels per beat) size s_axis
        self.input_layer = input_layer_name(design.stages)
        first = design.layer(self.input_layer) if self.input_layer is not None else None
        in_lanes = input_lanes(first) if first is not None and first.computes else 1
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
            # (cs_cond_buffer takes a decision once its sample is complete): as deep as decided
            # (docs/hw_models.md "Decision capacity")
            dec = self.fifo(f"exit{k}_dec_q", dec, stage.hardware.decision_fifo_depth)
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
        self.in_pixels = first.folding.pixels_per_beat if first is not None and first.computes else 1
        order = ("clk", "rst", "s_axis", "m_axis", "threshold", "dbg_logits", "dbg_occupancy")
        net.ports.sort(key=lambda p: next(i for i, o in enumerate(order) if p.name.startswith(o)))


def top_name(design: stage_ir.Design) -> str:
    name = re.sub(r"[^0-9a-zA-Z_]", "_", design.name)
    return f"{name if re.match(r'[A-Za-z]', name) else 'd_' + name}_ee"


def _carries_state(design: stage_ir.Design) -> bool:
    """The policy's (previous class, count) state travels with each sample between exits."""
    return design.policy is not None and pol.get(design.policy.kind).carries_state
