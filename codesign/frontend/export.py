"""Export: one QONNX file per stage, the stage IR (design.json), and proof of bit-exactness.

Stage k = backbone segment k + exit head k. Its QONNX input is re-quantised
with the quantiser whose grid it is already on (the identity), so every stage
file carries its own input precision for hls4ml.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from pydantic import TypeAdapter
from torch import nn

from codesign.design import ir
from codesign.frontend.config import Config
from codesign.frontend.data import Dataset
from stage_ir.errors import UserError, verification_failed
from codesign.frontend.model import EarlyExitNet, StageModule
from codesign.design.reference import run_stage
from codesign.frontend.run import load_trained
from codesign.store.scratch import keep_failed, replace_dir
import stage_ir
from stage_ir.kinds import KIND_OF_TORCH, SPECS, Layer, kind_name, spec_names

EXPORT_DIR = "export"


def pow2_frac(scale: float, what: str) -> int:
    """f with scale == 2**-f, or a UserError: only power-of-two scales are bit-exact in hardware."""
    f = -math.log2(scale)
    if not math.isfinite(f) or abs(f - round(f)) > 1e-9 or 2.0 ** -round(f) != scale:
        raise UserError(f"{what} has scale {scale!r}, not a power of two; use the FixedPoint quantisers (codesign's defaults)")
    return int(round(f))


def _qt(t) -> tuple[int, int]:
    """(frac, bits) of a QuantTensor."""
    scale = float(t.scale.detach().reshape(-1)[0])
    if t.scale.numel() != 1:
        raise UserError("per-channel scales are not supported; use per-tensor quantisers")
    return pow2_frac(scale, "a tensor"), int(t.bit_width)


def _acc_bits(w: np.ndarray, b: np.ndarray, x_max: int) -> int:
    """Signed width that holds any accumulator value for inputs in [0, x_max] (one bit more than
    needed when a bound is a power of two: kept so that exported designs do not change)."""
    lo, hi = stage_ir.accumulator_range(w, b, 0, x_max)
    bound = int(max(hi.max(), -lo.min(), 1))
    return bound.bit_length() + 1


def _spec(shape, frac: int, bits: int, signed: bool = False) -> dict:
    return {"shape": [int(s) for s in shape], "bits": int(bits), "frac": int(frac), "signed": signed}


class _IRBuilder:
    """Walks a stage's modules on a sample batch, recording integer weights and grids."""

    def __init__(self, weights_dir: Path) -> None:
        self.weights_dir = weights_dir
        self.arrays: dict[str, np.ndarray] = {}  # as design.array() will read them back

    def _save(self, name: str, arr: np.ndarray, dtype) -> str:
        np.save(self.weights_dir / f"{name}.npy", arr.astype(dtype))
        rel = f"{EXPORT_DIR}/weights/{name}.npy"
        self.arrays[rel] = arr.astype(np.int64)
        return rel

    def compute_layer(self, name: str, mod: nn.Module, h, out, act_mod) -> dict:
        fx, bx = _qt(h)
        qw = mod.quant_weight()
        fw = pow2_frac(float(qw.scale.reshape(-1)[0]), f"layer {name} weights")
        w_int = qw.int().detach().numpy().astype(np.int64)
        # Int16Bias: round-half-even at the accumulator scale, clamped to 16 bits, as Brevitas does
        b_lo, b_hi = stage_ir.signed_range(stage_ir.BIAS_BITS)
        b_int = torch.clamp(torch.round(mod.bias.detach().double() * 2.0 ** (fx + fw)), b_lo, b_hi)
        b_int = b_int.numpy().astype(np.int64)
        acc_frac = fx + fw
        layer = {
            "name": name,
            "input": _spec(h.value.shape[1:], fx, bx),
            "weight": self._save(f"{name}_w", w_int, np.int8),
            "bias": self._save(f"{name}_b", b_int, np.int32),
            "w_bits": int(qw.bit_width),
            "w_frac": fw,
            "acc_bits": _acc_bits(w_int, b_int, 2**bx - 1),
            "folding": {"pe": 1, "simd": 1},
            "reuse_factor": None,
        }
        if act_mod is None:
            layer["act"] = None
            layer["output"] = _spec(out.shape[1:], acc_frac, layer["acc_bits"], signed=True)
        else:
            fa, ba = _qt(out)
            layer["act"] = {"bits": ba, "frac": fa, "shift": acc_frac - fa}
            layer["output"] = _spec(out.value.shape[1:], fa, ba)
        kind = KIND_OF_TORCH[type(mod).__name__]
        layer.update(kind=kind_name(kind), **kind.torch_fields(mod))
        return layer

    def sequence(self, prefix: str, mods: list[nn.Module], h) -> tuple[list[dict], object]:
        mods = [m for m in mods if not isinstance(m, nn.Identity)]  # folded batchnorms
        layers, i = [], 0
        while i < len(mods):
            mod = mods[i]
            name = f"{prefix}_l{len(layers)}"
            kind = KIND_OF_TORCH[type(mod).__name__]
            if kind.computes:
                act = mods[i + 1] if i + 1 < len(mods) and type(mods[i + 1]).__name__ in ACTIVATIONS else None
                acc = mod(h)
                out = act(acc) if act is not None else acc
                layers.append(self.compute_layer(f"{name}_{kind_name(kind)}", mod, h, out, act))
                i += 2 if act is not None else 1
            else:
                out = mod(h)
                fx, bx = _qt(h)
                layers.append({"name": f"{name}_{kind_name(kind)}", "input": _spec(h.value.shape[1:], fx, bx),
                               "output": _spec(out.value.shape[1:], fx, bx), "kind": kind_name(kind),
                               **kind.torch_fields(mod)})
                i += 1
            h = out
        return layers, h


def _macs(layers: list[dict]) -> int:
    return sum(_LAYER.validate_python(layer).macs for layer in layers)


@torch.no_grad()
def build_design(cfg: Config, model: EarlyExitNet, ds: Dataset, weights_dir: Path) -> stage_ir.Design:
    """The stage IR of a trained model; its integer arrays go to weights_dir and into the design's cache."""
    builder = _IRBuilder(weights_dir)
    x = torch.from_numpy(ds.to_float(ds.val.x[:4]))
    h = model.input_quant(x)
    stages = []
    for k in range(model.num_exits):
        h = model.stage_input_quant(k)(h) if k else h
        fx, bx = _qt(h)
        layers, feats = builder.sequence(f"s{k}", list(model.segments[k]), h)
        head, logits = builder.sequence(f"s{k}_head", list(model.heads[k]), feats)
        last = k == model.num_exits - 1
        ff, fb = _qt(feats)
        stages.append({
            "index": k,
            "input": _spec(h.value.shape[1:], fx, bx),
            "layers": layers,
            "features": None if last else _spec(feats.value.shape[1:], ff, fb),
            "head": head,
            "logits": head[-1]["output"],
            "macs": {"backbone": _macs(layers), "head": _macs(head)},
            "buffer_depth": None if last else cfg.hardware.buffer_depth,
            "export_stages": [k],
        })
        h = feats
    design = stage_ir.Design.model_validate({
        "schema": stage_ir.SCHEMA,
        "name": cfg.name,
        "num_classes": ds.num_classes,
        "input": _spec(ds.shape, ds.frac, ds.bits),
        "stages": stages,
        "policy": None,
        "clock_ns": cfg.hardware.clock_ns,
        "device": cfg.hardware.device,
        "macs_no_exit": sum(s["macs"]["backbone"] for s in stages) + stages[-1]["macs"]["head"],
    })
    design._cache.update(builder.arrays)
    return design


def _quiet():
    """Brevitas/torch.onnx print pages of progress and warnings; keep the CLI readable."""
    import logging

    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


# what torch's exporter records about the Python code that traced each op (its stack, absolute source
# paths included, and the dotted paths of the modules it ran through), not about the model
TORCH_TRACE_KEYS = ("pkg.torch.onnx.", "namespace")
_LAYER = TypeAdapter(Layer)
# the trained modules that are a compute layer's activation (its `act` in the IR)
ACTIVATIONS = {SPECS[t].torch_class.rsplit(".", 1)[-1] for t in spec_names(activation=True)}


def export_stage_qonnx(model: EarlyExitNet, k: int, example: torch.Tensor, path: Path) -> None:
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    import onnx

    stage = StageModule(model, k).eval()
    with _quiet():
        export_qonnx(stage, example, export_path=str(path))
    cleaned = cleanup_model(ModelWrapper(str(path))).model
    for extra in path.parent.glob(path.name + ".data"):
        extra.unlink()  # the exporter's external weights; the cleaned file embeds them
    for node in cleaned.graph.node:
        # with them the file (and the HLS projects stamped with its hash) would differ between two
        # checkouts of the same code, or after a module of this package moves
        kept = [p for p in node.metadata_props if not p.key.startswith(TORCH_TRACE_KEYS)]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.save_model(cleaned, str(path), save_as_external_data=False)


def qonnx_outputs(path: Path, x: np.ndarray) -> list[np.ndarray]:
    """Execute a QONNX file on a batch with qonnx's reference executor."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    with _quiet():
        model = cleanup_model(ModelWrapper(str(path)), override_inpsize=len(x))
        iname = model.graph.input[0].name
        res = execute_onnx(model, {iname: x.astype(np.float32)})
    return [res[o.name] for o in model.graph.output]


def _to_int(values: np.ndarray, frac: int, what: str) -> np.ndarray:
    scaled = values.astype(np.float64) * 2.0**frac
    ints = np.rint(scaled)
    if not np.array_equal(ints, scaled):
        raise UserError(f"{what} is not on its 2**-{frac} grid; the model breaks the bit-exact conventions")
    return ints.astype(np.int64)


@torch.no_grad()
def verify(design: stage_ir.Design, model: EarlyExitNet, ds: Dataset, export_dir: Path, batch: int = 1000) -> dict:
    """torch == QONNX == integer reference on every test sample and every stage."""
    x_all = ds.test.x
    report = {"samples": int(len(x_all)), "stages": []}
    h_int = x_all.astype(np.int64)
    h_float = torch.from_numpy(ds.to_float(x_all))
    bad_any = np.zeros(len(x_all), dtype=bool)
    for k, stage in enumerate(design.stages):
        torch_out = StageModule(model, k).eval()
        qonnx_diff = 0.0
        feats_next, bad = [], []
        for start in range(0, len(x_all), batch):
            xb = h_float[start:start + batch]
            t_out = torch_out(xb)
            t_feats, t_logits = (None, t_out) if stage.features is None else t_out
            q_out = qonnx_outputs(export_dir / f"stage_{k}.onnx", xb.numpy())
            t_list = [t_logits] if t_feats is None else [t_feats, t_logits]
            for q, t in zip(q_out, t_list):
                qonnx_diff = max(qonnx_diff, float(np.abs(q - t.numpy()).max()))
            ref = run_stage(design, k, h_int[start:start + batch])
            t_logits_int = _to_int(t_logits.numpy(), stage.logits.frac, f"stage {k} logits")
            rows = (ref.logits != t_logits_int).any(axis=1)
            if t_feats is not None:
                t_feats_int = _to_int(t_feats.numpy(), stage.features.frac, f"stage {k} features")
                rows |= (ref.features.reshape(len(xb), -1) != t_feats_int.reshape(len(xb), -1)).any(1)
                feats_next.append((t_feats, ref.features))
            bad.append(rows)
        stage_bad = np.concatenate(bad)
        bad_any |= stage_bad
        report["stages"].append({"index": k, "qonnx_max_abs_diff": qonnx_diff,
                                 "reference_mismatches": int(stage_bad.sum())})
        if feats_next:
            h_float = torch.cat([f for f, _ in feats_next])
            h_int = np.concatenate([r for _, r in feats_next])
    report["mismatches"] = sum(s["reference_mismatches"] for s in report["stages"])
    report["mismatched_sample_count"] = int(bad_any.sum())
    report["mismatched_samples"] = [int(i) for i in np.flatnonzero(bad_any)[:20]]
    report["qonnx_max_abs_diff"] = max(s["qonnx_max_abs_diff"] for s in report["stages"])
    return report


def export(run: Path) -> dict:
    """Write RUN/export/ (stage_<k>.onnx, design.json as exported, verify.json) and RUN/design.json."""
    from codesign.design.compose import write_design

    run = Path(run)
    cfg, model, ds = load_trained(run)
    final_dir = run / EXPORT_DIR
    # built in a scratch folder and moved into place: no half-written export on failure
    with replace_dir(final_dir) as tmp:
        (tmp / "weights").mkdir()
        design = build_design(cfg, model, ds, tmp / "weights")
        h = torch.from_numpy(ds.to_float(ds.test.x[:1]))
        for k in range(design.num_exits):
            export_stage_qonnx(model, k, h, tmp / f"stage_{k}.onnx")
            if k < design.num_exits - 1:
                h = StageModule(model, k).eval()(h)[0]
        report = verify(design, model, ds, tmp)
        (tmp / "verify.json").write_text(json.dumps(report, indent=2) + "\n")
        if report["mismatches"] or report["qonnx_max_abs_diff"] != 0.0:
            kept = keep_failed(tmp, run, "export")  # the run keeps its last good export
            raise verification_failed(f"export: torch vs integer reference (QONNX max abs diff "
                                      f"{report['qonnx_max_abs_diff']:g})", report["mismatched_sample_count"],
                                      report["samples"], report["mismatched_samples"], kept / "verify.json")
        ir.save_design(design, tmp, "design.json")  # array paths stay relative to RUN (export/weights/...)
    write_design(run)  # + an earlier calibration; a new export makes an earlier DSE choice void
    return report
