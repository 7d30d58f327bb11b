"""The quantised early-exit network in Brevitas, built from the config.

Quantisers follow the bit-exact recipe (TOOLCHAIN.md): power-of-two scales
(FixedPoint quantisers), 16-bit integer bias at the accumulator scale, FLOOR
rounding on activations, inputs on a constant power-of-two grid. Every layer
is then integer multiply-accumulate, arithmetic shift and clip, which the
numpy reference, hls4ml and the RTL reproduce exactly.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import brevitas.nn as qnn
import torch
from brevitas.inject.enum import FloatToIntImplType, ScalingImplType
from brevitas.quant import Int8WeightPerTensorFixedPoint, Int16Bias, Uint8ActPerTensorFixedPoint
from torch import nn

from codesign.frontend.config import Config, resolve_exit_positions
from stage_ir.errors import UserError
from stage_ir.kinds import LayerPlan, LayerSpec, Quant, TorchModule, spec_names


def input_quant(bits: int, frac: int) -> type:
    """Constant scale 2**-frac: the grid the data arrives on."""
    threshold = (2**bits - 1) * 2.0**-frac  # scale = threshold / (2**bits - 1), exactly 2**-frac

    class InputQuant(Uint8ActPerTensorFixedPoint):
        scaling_impl_type = ScalingImplType.CONST
        scaling_const = threshold
        max_val = threshold
        bit_width = bits

    return InputQuant


def weight_quant(bits: int) -> type:
    class WeightQuant(Int8WeightPerTensorFixedPoint):
        bit_width = bits

    return WeightQuant


def act_quant(bits: int) -> type:
    class ActQuant(Uint8ActPerTensorFixedPoint):
        bit_width = bits
        # the default ROUND is half-to-even, which no hardware back end reproduces
        float_to_int_impl_type = FloatToIntImplType.FLOOR

    return ActQuant


def _names(**flags: bool) -> str:
    return " or ".join(spec_names(**flags))


def plan_layers(specs: list[LayerSpec], shape: tuple[int, ...], cfg: Config, num_classes: int,
                where: str, is_head: bool) -> list[LayerPlan]:
    """Resolve shapes and bits and check the compute/activation pattern the hardware needs (the
    rules follow each layer type's flags, stage_ir.kinds.spec.LayerSpec)."""
    plans: list[LayerPlan] = []
    for i, spec in enumerate(specs):
        here = f"{where} layer {i} ({spec.type})"
        prev = specs[i - 1] if i else None
        if spec.folds_into_previous and not (prev is not None and prev.computes):
            raise UserError(f"{here}: a {spec.type} must directly follow a {_names(computes=True)} layer (it is "
                            "folded into it)")
        if spec.activation and not (prev is not None and (prev.computes or prev.folds_into_previous)):
            raise UserError(f"{here}: a {spec.type} must directly follow a {_names(computes=True)} layer (or its "
                            f"{_names(folds_into_previous=True)})")
        last = i == len(specs) - 1
        nxt = None if last else specs[i + 1]
        if nxt is not None and nxt.folds_into_previous and i + 2 < len(specs):
            nxt = specs[i + 2]  # the activation after the folded layer counts
        if spec.computes and not (nxt is not None and nxt.activation) and not (is_head and last):
            raise UserError(f"{here}: needs a {_names(activation=True)} after it (only the last layer of a head "
                            "outputs raw logits)")
        out = spec.out_shape(shape, num_classes, here)
        if is_head and last and (not spec.classifier or out != (num_classes,)):
            raise UserError(f"{where}: must end with a {_names(classifier=True)} layer of {num_classes} outputs "
                            "(the classes)")
        default_bits = cfg.quant.act_bits if spec.act_bits else cfg.quant.weight_bits
        bits = getattr(spec, "bits", None) or default_bits
        plans.append(LayerPlan(spec, shape, out, bits))
        shape = out
    return plans


def _instantiate(m: TorchModule) -> nn.Module:
    """The torch / Brevitas module a config layer describes, with the bit-exact recipe's quantisers."""
    module, name = m.path.rsplit(".", 1)
    quants = {"weight": weight_quant, "bias": lambda bits: Int16Bias, "act": act_quant}
    kwargs = {k: quants[v.role](v.bits) if isinstance(v, Quant) else v for k, v in m.kwargs.items()}
    return getattr(importlib.import_module(module), name)(*m.args, **kwargs)


def _module(plan: LayerPlan, raw_output: bool, folded: bool = False) -> nn.Module:
    return _instantiate(plan.spec.torch_module(plan, raw_output, folded))


def build_sequential(plans: list[LayerPlan], is_head: bool, folded: bool = False) -> nn.Sequential:
    return nn.Sequential(*[_module(p, is_head and i == len(plans) - 1, folded) for i, p in enumerate(plans)])


@dataclass(frozen=True)
class StagePlan:
    backbone: list[LayerPlan]
    head: list[LayerPlan]
    in_shape: tuple[int, ...]


def plan_network(cfg: Config, input_shape: tuple[int, ...], num_classes: int) -> list[StagePlan]:
    """Cut the backbone at the exits: stage k = backbone segment k + exit head k."""
    try:
        positions = resolve_exit_positions(cfg)
    except ValueError as err:
        raise UserError(f"model.exits: {err}") from None
    backbone = plan_layers(cfg.model.backbone, input_shape, cfg, num_classes, "model.backbone", is_head=False)
    cuts = [p + 1 for p in positions] + [len(backbone)]
    stages, start = [], 0
    for k, end in enumerate(cuts):
        last = k == len(cuts) - 1
        head_specs = cfg.model.classifier if last else (cfg.model.exits[k].head or cfg.model.exit_head)
        feat_shape = backbone[end - 1].out_shape if end > 0 else input_shape
        where = "model.classifier" if last else f"model.exits[{k}].head"
        head = plan_layers(head_specs, feat_shape, cfg, num_classes, where, is_head=True)
        in_shape = backbone[start].in_shape if start < len(backbone) else feat_shape
        stages.append(StagePlan(backbone[start:end], head, in_shape))
        start = end
    return stages


class EarlyExitNet(nn.Module):
    """Backbone segments with one head each; forward returns every exit's logits."""

    def __init__(self, cfg: Config, input_shape: tuple[int, ...], input_bits: int, input_frac: int,
                 num_classes: int, folded: bool = False) -> None:
        super().__init__()
        self.plans = plan_network(cfg, input_shape, num_classes)
        self.folded = folded
        self.input_quant = qnn.QuantIdentity(act_quant=input_quant(input_bits, input_frac), return_quant_tensor=True)
        self.segments = nn.ModuleList(build_sequential(p.backbone, False, folded) for p in self.plans)
        self.heads = nn.ModuleList(build_sequential(p.head, True, folded) for p in self.plans)

    @property
    def num_exits(self) -> int:
        return len(self.plans)

    def stage_input_quant(self, k: int) -> nn.Module:
        """The quantiser whose grid stage k's input is on (re-applying it is the identity)."""
        for j in range(k - 1, -1, -1):
            relus = [m for m in self.segments[j] if isinstance(m, qnn.QuantReLU)]
            if relus:
                return relus[-1]
        return self.input_quant

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.input_quant(x)
        outs = []
        for segment, head in zip(self.segments, self.heads):
            h = segment(h)
            outs.append(head(h))
        return outs


def has_batchnorm(cfg: Config) -> bool:
    heads = [e.head or cfg.model.exit_head for e in cfg.model.exits] + [cfg.model.classifier]
    return any(layer.folds_into_previous for layers in [cfg.model.backbone, *heads] for layer in layers)


class StageModule(nn.Module):
    """Stage k alone, as exported: (features, logits), or logits in the last stage."""

    def __init__(self, net: EarlyExitNet, k: int) -> None:
        super().__init__()
        self.quant = net.stage_input_quant(k)
        self.segment = net.segments[k]
        self.head = net.heads[k]
        self.last = k == net.num_exits - 1

    def forward(self, x: torch.Tensor):
        feats = self.segment(self.quant(x))
        logits = self.head(feats)
        if self.last:
            return logits
        return feats.value if hasattr(feats, "value") else feats, logits


def build_model(cfg: Config, input_shape: tuple[int, ...], input_bits: int, input_frac: int,
                num_classes: int, folded: bool = False) -> EarlyExitNet:
    torch.manual_seed(cfg.seed)
    return EarlyExitNet(cfg, input_shape, input_bits, input_frac, num_classes, folded)


@torch.no_grad()
def fold_batchnorm(model: EarlyExitNet, cfg: Config, input_shape: tuple[int, ...], input_bits: int,
                   input_frac: int, num_classes: int) -> EarlyExitNet:
    """The same network with every batchnorm folded into the conv/linear before it.

    W' = W * g / sqrt(var + eps) per output channel, b' = (b - mean) * g / sqrt(var + eps) + beta.
    The weight quantiser then re-derives its power-of-two scale from W', so the
    folded network is what every later step (calibration, export, hardware) sees.
    """
    folded = build_model(cfg, input_shape, input_bits, input_frac, num_classes, folded=True)
    state = {k: v for k, v in model.state_dict().items() if ".running_" not in k and "num_batches" not in k}
    for prefix, seqs in (("segments", model.segments), ("heads", model.heads)):
        for i, seq in enumerate(seqs):
            mods = list(seq)
            for j, mod in enumerate(mods):
                if not isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    continue
                layer = mods[j - 1]
                factor = mod.weight / torch.sqrt(mod.running_var + mod.eps)
                shape = (-1,) + (1,) * (layer.weight.dim() - 1)
                state[f"{prefix}.{i}.{j - 1}.weight"] = layer.weight * factor.reshape(shape)
                state[f"{prefix}.{i}.{j - 1}.bias"] = (layer.bias - mod.running_mean) * factor + mod.bias
                for key in ("weight", "bias"):
                    state.pop(f"{prefix}.{i}.{j}.{key}", None)
    folded.load_state_dict(state)
    folded.eval()
    return folded
