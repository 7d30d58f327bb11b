"""A design with a subset of its early exits: a dropped exit's stage merges into the next kept one,
each kept exit keeps its own policy entries, and the DSE's folding and buffer depths are written in."""
from __future__ import annotations

from stage_ir import Design, MatrixLayer, Policy

from .decisions import candidate_cost, draft
from .dse_tables import _groups


def reduced_design(design: Design, kept: list[int]) -> Design:
    """The design with only the kept early exits: a dropped exit's stage merges into the next kept
    stage (its backbone layers first; its head, threshold unit and conditional buffer gone).

    The merged stage takes the first member's input, the kept stage's head, features and buffer,
    the members' backbone MACs, and records the original stages it runs (`export_stages`)."""
    groups = _groups(design, tuple(kept))
    stages = []
    for i, g in enumerate(groups):
        members = [m for _, m in g["members"]]
        st = g["stage"]
        stages.append(st.model_copy(update={
            "index": i, "layers": g["layers"], "input": members[0].input,
            "export_stages": [e for _, m in g["members"] for e in m.export_stages],
            "macs": {"backbone": sum(int(m.macs["backbone"]) for m in members), "head": int(st.macs["head"])}}))
    return design.model_copy(update={"stages": stages,
                                     "policy": _kept_policy(design.policy, [g["exit"] for g in groups])})


def _kept_policy(policy: Policy | None, exits: list[int]) -> Policy | None:
    """`policy` for the stages ending at original exits `exits` (the final one last): each
    per-exit list keeps the kept exits' entries, so reduced stage i reads its own exit's
    threshold and table (stage_costs indexes them by stage)."""
    if policy is None:
        return None
    early = exits[:-1]
    update: dict = {"thresholds": [policy.thresholds[e] for e in early]}
    if policy.float_thresholds:
        update["float_thresholds"] = [policy.float_thresholds[e] for e in early]
    if policy.tables:
        tables = dict(policy.tables)
        if "exits" in tables:
            tables["exits"] = [tables["exits"][e] for e in early]
        for key in ("logit_frac", "logit_bits"):
            if key in tables:
                tables[key] = [tables[key][e] for e in exits]
        if "num_exits" in tables:
            tables["num_exits"] = len(exits)
        update["tables"] = tables
    return policy.model_copy(update=update)


def chosen_design(design: Design, chosen: dict) -> Design:
    """The design the DSE chose (`chosen`: its result's "chosen"): the kept exits only
    (`reduced_design`), with the chosen folding and buffer depths written in (decisions.draft:
    pixels per beat by rule, the stages' decisions left to `stages.decide`)."""
    new = reduced_design(design, list(chosen["exits_kept"][:-1]))
    depths = [int(d) for d in chosen["buffer_depths"]][:len(new.stages) - 1]
    return draft(new, chosen["folding"], depths + [st.buffer_depth for st in new.stages[len(depths):-1]])


def fold_for_ii(layer: MatrixLayer, ii: float, first: bool = False) -> dict:
    """The fewest lanes (PE * SIMD) whose cycles per sample stay within ii, else the most lanes.

    Ties: the slower of equal lane counts (closest to ii), then the smaller PE.  `first`: the
    layer is the network's first (geometry.input_layer_name)."""
    # its cycles include a conv's input-read bound
    pairs = [(pe, simd, float(candidate_cost(layer, pe, simd, first).cycles))
             for pe, simd in layer.foldings().astype(int).tolist()]
    fast = [p for p in pairs if p[2] <= ii] or [max(pairs, key=lambda p: p[0] * p[1])]
    pe, simd, _ = min(fast, key=lambda p: (p[0] * p[1], -p[2], p[0]))
    return {"pe": int(pe), "simd": int(simd)}
