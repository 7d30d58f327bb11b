"""The quantised early-exit network in Brevitas, built from the config.

Quantisers follow the bit-exact recipe (TOOLCHAIN.md): power-of-two scales
(FixedPoint quantisers), 16-bit integer bias at the accumulator scale, FLOOR
rounding on activations, inputs on a constant power-of-two grid. Every layer
is then integer multiply-accumulate, arithmetic shift and clip, which the
numpy reference, hls4ml and the RTL reproduce exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import brevitas.nn as qnn
import torch
from brevitas.inject.enum import FloatToIntImplType, ScalingImplType
from brevitas.quant import Int8WeightPerTensorFixedPoint, Int16Bias, Uint8ActPerTensorFixedPoint
from torch import nn

from codesign.config import Config, LayerSpec, resolve_exit_positions
from stage_ir.errors import UserError


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


@dataclass(frozen=True)
class LayerPlan:
    """One config layer with its resolved sizes (shape excludes the batch)."""

    spec: LayerSpec
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    bits: int


def _out_shape(spec: LayerSpec, shape: tuple[int, ...], num_classes: int, where: str) -> tuple[int, ...]:
    kind = spec.type
    if kind == "linear":
        if len(shape) != 1:
            raise UserError(f"{where}: linear layer gets a {list(shape)} feature map; put a flatten before it")
        return (spec.out_features or num_classes,)
    if kind in ("conv2d", "maxpool2d"):
        if len(shape) != 3:
            raise UserError(f"{where}: {kind} needs a [C, H, W] input but gets {list(shape)}; move it before the flatten")
        c, h, w = shape
        k = spec.kernel
        s = spec.stride if kind == "conv2d" else (spec.stride or spec.kernel)
        p = spec.padding if kind == "conv2d" else 0
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if oh < 1 or ow < 1:
            raise UserError(f"{where}: {kind} kernel {k} does not fit its {h}x{w} input; use a smaller kernel or fewer pools")
        return (spec.out_channels if kind == "conv2d" else c, oh, ow)
    if kind == "flatten":
        if len(shape) != 3:
            raise UserError(f"{where}: flatten needs a [C, H, W] input but gets {list(shape)}; remove it")
        return (math.prod(shape),)
    return shape  # relu


def plan_layers(specs: list[LayerSpec], shape: tuple[int, ...], cfg: Config, num_classes: int,
                where: str, is_head: bool) -> list[LayerPlan]:
    """Resolve shapes and bits and check the compute/activation pattern the hardware needs."""
    plans: list[LayerPlan] = []
    for i, spec in enumerate(specs):
        here = f"{where} layer {i} ({spec.type})"
        prev = specs[i - 1].type if i else None
        if spec.type == "batchnorm" and prev not in ("linear", "conv2d"):
            raise UserError(f"{here}: a batchnorm must directly follow a linear or conv2d layer (it is folded into it)")
        if spec.type == "relu" and prev not in ("linear", "conv2d", "batchnorm"):
            raise UserError(f"{here}: a relu must directly follow a linear or conv2d layer (or its batchnorm)")
        last = i == len(specs) - 1
        nxt = None if last else specs[i + 1].type
        if nxt == "batchnorm" and i + 2 < len(specs):
            nxt = specs[i + 2].type  # the relu after the batchnorm counts
        if spec.type in ("linear", "conv2d") and nxt != "relu" and not (is_head and last):
            raise UserError(f"{here}: needs a relu after it (only the last layer of a head outputs raw logits)")
        out = _out_shape(spec, shape, num_classes, here)
        if is_head and last and (spec.type != "linear" or out != (num_classes,)):
            raise UserError(f"{where}: must end with a linear layer of {num_classes} outputs (the classes)")
        default_bits = cfg.quant.act_bits if spec.type == "relu" else cfg.quant.weight_bits
        bits = getattr(spec, "bits", None) or default_bits
        plans.append(LayerPlan(spec, shape, out, bits))
        shape = out
    return plans


def _module(plan: LayerPlan, raw_output: bool, folded: bool = False) -> nn.Module:
    s = plan.spec
    if s.type == "batchnorm":
        if folded:  # already inside the previous layer's weights
            return nn.Identity()
        return nn.BatchNorm2d(plan.in_shape[0]) if len(plan.in_shape) == 3 else nn.BatchNorm1d(plan.in_shape[0])
    if s.type == "linear":
        return qnn.QuantLinear(plan.in_shape[0], plan.out_shape[0], bias=True, weight_quant=weight_quant(plan.bits),
                               bias_quant=Int16Bias, return_quant_tensor=not raw_output)
    if s.type == "conv2d":
        return qnn.QuantConv2d(plan.in_shape[0], plan.out_shape[0], s.kernel, stride=s.stride, padding=s.padding,
                               bias=True, weight_quant=weight_quant(plan.bits), bias_quant=Int16Bias,
                               return_quant_tensor=True)
    if s.type == "relu":
        return qnn.QuantReLU(act_quant=act_quant(plan.bits), return_quant_tensor=True)
    if s.type == "maxpool2d":
        return nn.MaxPool2d(s.kernel, stride=s.stride or s.kernel)
    return nn.Flatten()


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
    return any(layer.type == "batchnorm" for layers in [cfg.model.backbone, *heads] for layer in layers)


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
