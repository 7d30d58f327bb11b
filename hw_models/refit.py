"""Refit the RTL resource coefficients (coefficients.yaml) to yosys synthesis results.

Input: runs with RUN/design.json and RUN/synth.json (codesign.rtl.synth_run).  Each
synthesised top-level instance is assigned to the model block it implements
(`block_of_instance`: a layer's MVU plus its FIFOs and width converter, the
exit path of stage k (and the input tagger for k = 0) -> its threshold unit,
buffer k -> its conditional buffer, merge -> the exit merge), giving one measured LUT and FF
figure per model block.  The model is linear in its additive coefficients
(base costs, per-bit costs): their columns are obtained by finite differences
of hw_models.stage_costs, and non-negative least squares (scipy
`lsq_linear`, weights 1 / sqrt(max(measured, 20)): between absolute and
relative errors, so the large blocks that decide a stage's total count more)
gives new values.  Structural coefficients (DSP rules, BRAM thresholds, bits per LUT,
cycles) are not fitted: DSP and BRAM are checked for equality instead.

    .venv/bin/python -m hw_models.refit RUN [RUN ...] [--write]
"""
from __future__ import annotations

import argparse
import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from stage_ir import Design

from .coefficients import COEFFICIENTS_FILE, coefficients
from .stages import stage_costs

# additive coefficients the fit may change, per resource
FIT = {
    "lut": [("mvu", "base_lut"), ("mvu", "lut_per_mult_bit2"), ("mvu", "lut_per_adder_bit"),
            ("mvu", "lut_per_acc_bit"), ("mvu", "lut_per_input_bit"), ("mvu", "requant_lut_per_bit"), ("mvu", "lut_per_fifo_bit"),
            ("mvu", "lut_per_lutram_fifo_bit"),
            ("swu", "base_lut"), ("swu", "lut_per_read_lane"), ("maxpool", "base_lut"), ("maxpool", "lut_per_cmp_bit"),
            ("dwc", "base_lut"), ("dwc", "lut_per_bit"), ("split", "lut_per_bit"),
            ("merge", "base_lut"), ("merge", "lut_per_input_bit"), ("cond_buffer", "base_lut"), ("cond_buffer", "decision_lut_per_bit"),
            ("weights", "rom_lut_per_column"),
            ("threshold", "base_lut"), ("threshold", "cmp_lut_per_bit")],
    "ff": [("mvu", "base_ff"), ("mvu", "ff_per_acc_bit"), ("mvu", "ff_per_product_bit"), ("mvu", "ff_per_out_fifo_bit"), ("mvu", "ff_per_register_input_bit"),
           ("mvu", "ff_per_rom_word_bit"),
           ("swu", "base_ff"), ("swu", "ff_per_read_lane"), ("maxpool", "ff_per_bit"), ("dwc", "ff_per_bit"), ("split", "ff_per_bit"),
           ("merge", "ff_per_bit"), ("cond_buffer", "base_ff"), ("threshold", "base_ff"),
           ("threshold", "ff_per_stored_logit_bit")],
}


def block_of_instance(instance: str, blocks: set[str], layers: list[str]) -> str | None:
    """The model block (stage_costs' Block.name) a top-level RTL instance implements."""
    base = instance[2:] if instance.startswith("u_") else instance
    m = re.match(r"exit(\d+)_dec_q$", base)  # the decision FIFO in front of buffer k (its cost model)
    if m and f"s{m.group(1)}_cond_buffer" in blocks:
        return f"s{m.group(1)}_cond_buffer"
    m = re.match(r"(?:exit(\d+)_|stage(\d+)_meta_q$)", base)
    if m:
        return f"s{m.group(1) or m.group(2)}_threshold"
    m = re.match(r"stage(\d+)_split$", base)
    if m:
        return f"s{m.group(1)}_split"
    m = re.match(r"buffer(\d+)", base)
    if m:
        return f"s{m.group(1)}_cond_buffer"
    if base == "tagger":  # tags feed stage 0's meta FIFO to exit 0 (synth_run counts it in stage 0)
        return "s0_threshold" if "s0_threshold" in blocks else "exit_merge"
    if base == "merge":
        return "exit_merge"
    for layer in sorted(layers, key=len, reverse=True):
        if base == layer or base.startswith(layer + "_"):
            if base == f"{layer}_cvt" and f"{layer}_dwc" in blocks:
                return f"{layer}_dwc"
            return layer if layer in blocks else None
    return None


def _model_blocks(design: Design) -> dict[str, dict[str, float]]:
    out = {}
    for sc in stage_costs(design, "rtl"):
        for b in sc.blocks:
            r = b.cost.resources()
            out[b.name] = {k: float(np.asarray(r[k])) for k in ("lut", "ff", "dsp", "bram")}
    return out


def measured_blocks(design: Design, synth: dict) -> dict[str, dict[str, float]]:
    """Measured LUT/FF/DSP/BRAM per model block from synth.json's instances."""
    blocks = set(_model_blocks(design))
    layers = [l.name for l in design.layers()]
    out: dict[str, dict[str, float]] = {}
    for inst in synth["instances"]:
        b = block_of_instance(inst["name"], blocks, layers)
        if b is None:
            continue
        row = out.setdefault(b, {"lut": 0.0, "ff": 0.0, "dsp": 0.0, "bram": 0.0})
        for r in row:
            row[r] += float(inst[r])
    return out


def _rows(samples: list[tuple[Design, dict]]) -> tuple[list[str], dict, dict]:
    """(row ids, measured [rows] per resource, model [rows] per resource) over all designs' blocks."""
    ids, meas, model = [], {r: [] for r in ("lut", "ff", "dsp", "bram")}, {r: [] for r in ("lut", "ff", "dsp", "bram")}
    for i, (design, synth) in enumerate(samples):
        mb = _model_blocks(design)
        for name, row in sorted(measured_blocks(design, synth).items()):
            ids.append(f"{i}:{name}")
            for r in meas:
                meas[r].append(row[r])
                model[r].append(mb[name][r])
    return ids, {r: np.array(v) for r, v in meas.items()}, {r: np.array(v) for r, v in model.items()}


def _predict(samples, ids) -> dict[str, np.ndarray]:
    pred = {"lut": [], "ff": []}
    for i, (design, _) in enumerate(samples):
        mb = _model_blocks(design)
        for rid in ids:
            j, name = rid.split(":", 1)
            if int(j) == i:
                pred["lut"].append(mb[name]["lut"])
                pred["ff"].append(mb[name]["ff"])
    return {r: np.array(v) for r, v in pred.items()}


def refit(samples: list[tuple[Design, dict]]) -> dict[str, Any]:
    """New `rtl` coefficients from (design dict, synth.json dict) pairs; returns {coefficients, report}."""
    from scipy.optimize import lsq_linear

    live = coefficients()["rtl"]
    original = copy.deepcopy(live)
    ids, meas, before = _rows(samples)
    fitted: dict[tuple[str, str], float] = {}
    try:
        base = _predict(samples, ids)
        for res, keys in FIT.items():
            cols, used = [], []
            for sec, key in keys:
                old = float(live[sec].get(key, 0.0))
                live[sec][key] = old + 1.0
                d = _predict(samples, ids)[res] - base[res]
                live[sec][key] = old
                if np.any(np.abs(d) > 1e-9):
                    cols.append(d)
                    used.append((sec, key))
            if not cols:
                continue
            f = np.stack(cols, axis=1)
            c0 = np.array([float(live[s].get(k, 0.0)) for s, k in used])
            y = meas[res] - (base[res] - f @ c0)
            w = 1.0 / np.sqrt(np.maximum(meas[res], 20.0))  # between absolute and relative: big blocks count more
            sol = lsq_linear(f * w[:, None], y * w, bounds=(0.0, np.inf))
            for (sec, key), v in zip(used, sol.x):
                fitted[(sec, key)] = float(round(v, 4))
        for (sec, key), v in fitted.items():
            live[sec][key] = v
        after = _predict(samples, ids)
        new = copy.deepcopy(live)
    finally:
        live.clear()
        live.update(original)

    def errs(pred, r):
        m = meas[r]
        ok = m > 0
        e = np.abs(pred[r][ok] - m[ok]) / m[ok]
        return {"mean_abs": float(e.mean()) if e.size else None, "worst_abs": float(e.max()) if e.size else None}

    report = {"blocks": len(ids), "fitted": {f"{s}.{k}": v for (s, k), v in sorted(fitted.items())},
              "block_error_before": {r: errs(before, r) for r in ("lut", "ff")},
              "block_error_after": {r: errs(after, r) for r in ("lut", "ff")},
              "rows": [{"block": rid, "lut": float(meas["lut"][i]), "ff": float(meas["ff"][i]),
                        "model_lut_before": float(before["lut"][i]), "model_lut_after": float(after["lut"][i]),
                        "model_ff_before": float(before["ff"][i]), "model_ff_after": float(after["ff"][i]),
                        "dsp": float(meas["dsp"][i]), "model_dsp": float(before["dsp"][i]),
                        "bram": float(meas["bram"][i]), "model_bram": float(before["bram"][i])}
                       for i, rid in enumerate(ids)]}
    return {"coefficients": new, "report": report}


def _stage_totals(design: Design, rtl: dict) -> list[dict[str, float]]:
    """Model LUT/FF per stage of `design` with the `rtl` coefficients in place of the live ones."""
    live = coefficients()["rtl"]
    original = copy.deepcopy(live)
    try:
        live.clear()
        live.update(copy.deepcopy(rtl))
        return [{r: sc.total()[r] for r in ("lut", "ff")} for sc in stage_costs(design, "rtl")]
    finally:
        live.clear()
        live.update(original)


def cross_validate(samples: list[tuple[Design, dict]]) -> dict[str, Any]:
    """Leave one design out: refit on the others, predict the left-out design's stages.

    The in-sample fit answers "can the model describe these designs"; this answers "how far
    off is it on a design it was not fitted to", the figure a user of a new design gets.
    """
    rows = []
    for i, (design, synth) in enumerate(samples):
        others = samples[:i] + samples[i + 1:]
        fitted = refit(others)["coefficients"]
        for k, model in enumerate(_stage_totals(design, fitted)):
            meas = synth["stages"][k]
            rows.append({"design": i, "stage": k, **{f"{r}": float(meas[r]) for r in ("lut", "ff")},
                         **{f"model_{r}": model[r] for r in ("lut", "ff")},
                         **{f"error_{r}": (model[r] - meas[r]) / meas[r] if meas[r] else None for r in ("lut", "ff")}})
    summary = {}
    for r in ("lut", "ff"):
        e = np.abs([row[f"error_{r}"] for row in rows if row[f"error_{r}"] is not None])
        summary[r] = {"n": int(e.size), "mean_abs": float(e.mean()), "worst_abs": float(e.max())}
    return {"method": "leave one design out", "summary": summary, "stages": rows}


def write_coefficients(fitted: dict[str, float], path: Path = COEFFICIENTS_FILE, note: str = "fitted") -> None:
    """Rewrite values under `rtl:` in place (comments kept); fitted keys are 'section.key'."""
    lines = path.read_text().splitlines()
    out, top, sec = [], None, None
    for line in lines:
        m = re.match(r"^(\S[^:]*):\s*(#.*)?$", line)
        if m:
            top, sec = m.group(1), None
        m2 = re.match(r"^  (\w+):\s*(#.*)?$", line)
        if m2:
            sec = m2.group(1)
        m3 = re.match(r"^(    )(\w+):(\s*)([-0-9.eE+]+)(\s*)(#.*)?$", line)
        if top == "rtl" and sec and m3 and f"{sec}.{m3.group(2)}" in fitted:
            value = fitted[f"{sec}.{m3.group(2)}"]
            comment = (m3.group(6) or "").replace("(initial guess)", "").strip()
            comment = re.sub(r"\s*\[[^\]]*fit[^\]]*\]", "", comment)
            tag = f"[{note}]"
            text = f"{m3.group(1)}{m3.group(2)}: {value:g}"
            line = f"{text:<31} # {tag}" + (f" {comment.lstrip('#').strip()}" if comment.lstrip('#').strip() else "")
        out.append(line)
    path.write_text("\n".join(out) + "\n")
    coefficients.cache_clear()


def load_samples(runs: list[Path]) -> list[tuple[Design, dict]]:
    out = []
    for run in runs:
        run = Path(run)
        if (run / "synth.json").is_file():
            design = Design.model_validate(json.loads((run / "design.json").read_text()))
            out.append((design, json.loads((run / "synth.json").read_text())))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="refit coefficients.yaml (rtl LUT/FF) to RUN/synth.json files")
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--write", action="store_true", help="rewrite hw_models/coefficients.yaml")
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args(argv)
    samples = load_samples(args.runs)
    if not samples:
        raise SystemExit("no RUN/synth.json found; run codesign.rtl.synth_run.synth_run first")
    r = refit(samples)
    print(json.dumps({k: r["report"][k] for k in ("blocks", "fitted", "block_error_before", "block_error_after")},
                     indent=1))
    if args.report:
        args.report.write_text(json.dumps(r["report"], indent=2) + "\n")
    if args.write:
        write_coefficients(r["report"]["fitted"], note=f"fitted to yosys 0.23, {len(samples)} designs")
    return r


if __name__ == "__main__":
    main()
