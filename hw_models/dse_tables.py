"""The DSE's per-stage tables: each compute layer's legal foldings with their cycles and resources,
the cheapest choice per stage II target, and the early-exit blocks' resources per buffer depth or
II target (dse.py combines them)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stage_ir import Design, LayerKind, MatrixLayer

from . import rtl_cost
from .decisions import candidate_cost
from .stages import DECISION_BITS, features_of, merge_result_bits

MAX_TARGETS = 160


@dataclass
class LayerOptions:
    name: str
    pe: np.ndarray
    simd: np.ndarray
    cycles: np.ndarray
    res: np.ndarray      # [n_options, 4] lut, ff, dsp, bram
    weight: np.ndarray   # normalised cost used to pick the cheapest option


def _layer_options(layer: MatrixLayer, totals: np.ndarray, first: bool = False) -> LayerOptions:
    pairs = layer.foldings()
    c = candidate_cost(layer, pairs[:, 0], pairs[:, 1], first)
    res = np.stack([np.broadcast_to(np.asarray(v, dtype=float), pairs[:, 0].shape)
                    for v in (c.lut, c.ff, c.dsp, c.bram)], axis=1)
    return LayerOptions(layer.name, pairs[:, 0], pairs[:, 1], np.asarray(c.cycles, dtype=float), res,
                        (res / totals).sum(axis=1))


@dataclass
class GroupTable:
    """One kept stage (original stages merged when exits are dropped), per II target."""
    ii: np.ndarray        # [n_targets]
    res: np.ndarray       # [n_targets, 4]
    choice: np.ndarray    # [n_targets, n_layers] option index per compute layer
    layers: list[LayerOptions]
    fixed_res: np.ndarray  # resources of non-compute blocks (pe=1 lanes), EE blocks excluded


def _group_table(layers: list[LayerKind], totals: np.ndarray, first: str | None = None) -> GroupTable:
    """`first`: name of the network's first layer (it may read several input pixels per beat)."""
    opts = [_layer_options(l, totals, l.name == first) for l in layers if l.computes]
    fixed = np.zeros(4)
    for l in layers:
        if not l.computes:
            c = rtl_cost.layer_cost(l, lanes=1)
            fixed += [float(c.lut), float(c.ff), float(c.dsp), float(c.bram)]
    if not opts:
        return GroupTable(np.ones(1), fixed[None, :], np.zeros((1, 0), int), [], fixed)
    targets = np.unique(np.concatenate([o.cycles for o in opts]))
    targets = targets[targets <= max(o.cycles.max() for o in opts)]
    floor = max(o.cycles.min() for o in opts)
    targets = targets[targets >= floor]
    if len(targets) > MAX_TARGETS:
        keep = np.unique(np.round(np.geomspace(1, len(targets), MAX_TARGETS)).astype(int) - 1)
        targets = targets[keep]
    choice = np.zeros((len(targets), len(opts)), dtype=int)
    res = np.tile(fixed, (len(targets), 1))
    ii = np.zeros(len(targets))
    for j, o in enumerate(opts):
        ok = o.cycles[None, :] <= targets[:, None]
        masked = np.where(ok, o.weight[None, :], np.inf)
        pick = masked.argmin(axis=1)
        choice[:, j] = pick
        res += o.res[pick]
        ii = np.maximum(ii, o.cycles[pick])
    return GroupTable(ii, res, choice, opts, fixed)


def _groups(design: Design, kept: tuple[int, ...]) -> list[dict]:
    """Merge original stages into kept stages; kept: early-exit indices kept."""
    stages = design.stages
    groups, layers, members = [], [], []
    for k, st in enumerate(stages):
        layers = layers + list(st.layers)
        members = members + [(k, st)]
        if k in kept or k == len(stages) - 1:
            groups.append({"exit": k, "layers": layers, "head": list(st.head), "stage": st,
                           "members": members})
            layers, members = [], []
    return groups


def _ee_resources(design: Design, group: dict, depths: np.ndarray, last: bool) -> np.ndarray:
    """[n_depths, 4] resources of split + conditional buffer (or exit merge); the threshold unit
    depends on the II target instead (_threshold_resources)."""
    st = group["stage"]
    if last:  # exit merge, as stages.py counts it
        m = rtl_cost.exit_merge(len(design.stages), merge_result_bits(design.num_classes))
        return np.tile([float(m.lut), float(m.ff), 0.0, 0.0], (len(depths), 1))
    feats = features_of(st)
    sp = rtl_cost.split(feats.size, feats.bits)
    buf = rtl_cost.conditional_buffer(depths, feats.size * feats.bits, feats.bits,  # no tag
                                      decision_bits=DECISION_BITS)
    fixed = np.array([float(sp.lut), float(sp.ff), 0.0, 0.0])
    var = np.stack([np.broadcast_to(np.asarray(v, dtype=float), depths.shape) for v in (buf.lut, buf.ff, buf.dsp, buf.bram)], 1)
    return fixed + var


def _threshold_resources(design: Design, group: dict, ii: np.ndarray) -> np.ndarray:
    """[n_targets, 4] resources of the group's threshold unit at each II target, in the form
    rtl_cost.threshold_parallel picks (as stages.py and the generator do): the pipelined unit
    where the sequential one would bound the stage, so the unit never sets the II."""
    st = group["stage"]
    n_classes = design.num_classes
    kind, table = design.exit_unit(int(group["exit"]))  # the group's last stage is its exit
    forms = [rtl_cost.threshold_unit(kind, n_classes, st.logits.bits, 1, table, parallel=p)
             for p in (False, True)]
    seq, par = ([float(t.lut), float(t.ff), float(t.dsp), 0.0] for t in forms)
    return np.where(rtl_cost.threshold_parallel(kind, n_classes, ii)[:, None], par, seq)
