"""Per-stage hls4ml projects: part and names, the stage's QONNX (composed when exits were dropped), its hls4ml config from design.json, conversion."""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from codesign.design import ir
from stage_ir import policies as pol
from stage_ir.errors import StepFailed, UserError
import stage_ir
from stage_ir.kinds import KINDS, spec_names


HLS_DIR = "hls"
TOP_DIR = "top"
IO_TYPES = ("io_parallel",)
DEFAULT_REUSE_FACTOR = 1
# Short device names (as in design.json / hw_models) -> a full Vitis part.
PARTS = {
    "xc7a35t": "xc7a35tcpg236-1",
    "xc7z020": "xc7z020clg400-1",
    "xc7z045": "xc7z045ffg900-2",
    "xczu3eg": "xczu3eg-sbva484-1-e",
    "xczu7ev": "xczu7ev-ffvc1156-2-e",
    "xczu9eg": "xczu9eg-ffvb1156-2-e",
    "xcu250": "xcu250-figd2104-2L-e",
    "xcvu9p": "xcvu9p-flga2104-2L-e",
    "xcvu13p": "xcvu13p-flga2577-2-e",
}
CXX = os.environ.get("CXX", "g++")
CXXFLAGS = ["-std=c++14", "-O1", "-w"]


# --------------------------------------------------------------------------- inputs


def resolve_part(part: str | None, device: str) -> str:
    """A full Vitis part from --part or design.json's device, or a UserError naming the known ones."""
    name = (part or device).strip()
    if name in PARTS:
        return PARTS[name]
    if any(name.startswith(short) and len(name) > len(short) for short in PARTS):
        return name  # a full part name of a known device (package / speed grade chosen by the user)
    raise UserError(f"unknown FPGA part {name!r}; use one of {', '.join(PARTS)} or a full part name of one of them "
                    "(e.g. xc7z020clg400-1)")


def require_inputs(run: Path) -> stage_ir.Design:
    """design.json with a calibrated policy (a one-exit design needs none) and every exported stage's ONNX,
    or a UserError naming the step to run."""
    design = ir.load_design(run)
    for e in (e for st in design.stages for e in st.export_stages):
        if not (run / "export" / f"stage_{e}.onnx").is_file():
            raise UserError(f"{run / 'export' / f'stage_{e}.onnx'} not found; run `codesign export {run}` first")
    if design.policy is None and design.num_exits >= 2:
        raise UserError(f"{run / 'design.json'} has no exit policy; run `codesign calibrate {run}` first")
    if design.num_exits >= 2:
        pol.check_thresholds(design.policy.kind, design.policy.tables, design.policy.thresholds)
    return design


def c_name(text: str) -> str:
    name = re.sub(r"[^0-9a-zA-Z_]", "_", text)
    return name if re.match(r"[A-Za-z_]", name) else f"d_{name}"


def fixed(spec_bits: int, frac: int, signed: bool) -> str:
    """hls4ml precision string of an integer grid: `bits` bits, real value = int * 2**-frac."""
    return f"{'fixed' if signed else 'ufixed'}<{spec_bits},{spec_bits - frac}>"


# --------------------------------------------------------------------------- hls4ml stages


@contextlib.contextmanager
def _quiet():
    """qonnx/hls4ml print the whole topology and warn a lot; keep the CLI readable."""
    logging.getLogger("hls4ml").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def prepare_stage_onnx(path: Path):
    """The TOOLCHAIN.md recipe: cleanup, channels-last, Gemm -> MatMul, cleanup; the result must compute
    what the file does (a graph transform that rewires a branch wrongly is caught here, not in C simulation)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    from codesign.hls.channels_last import convert_to_channels_last

    original = cleanup_model(ModelWrapper(str(path)))
    model = original
    if any(n.op_type in SPATIAL_OPS for n in model.graph.node):
        model = copy.deepcopy(model)
        split_output_forks(model)
        model = cleanup_model(model)  # shapes of the new tensors
    model = convert_to_channels_last(model)
    model = cleanup_model(model.transform(GemmToMatMul()))
    _check_same_outputs(original, model, path)
    return model


def _check_same_outputs(original, prepared, path: Path) -> None:
    """Both graphs on the same input (one sample, values spread over and beyond the input quantiser's
    range) give the same outputs, bit for bit: they hold the same quantisers and small-integer grids."""
    from qonnx.core.onnx_exec import execute_onnx

    name = original.graph.input[0].name
    shape = original.get_tensor_shape(name)
    x = np.random.default_rng(0).uniform(-0.5, 2.0, size=shape).astype(np.float32)
    problem = f"{path}: the graph prepared for hls4ml (cleanup, channels-last, Gemm -> MatMul) "
    want = [execute_onnx(original, {name: x})[v.name] for v in original.graph.output]
    try:
        out = execute_onnx(prepared, {prepared.graph.input[0].name: x})
    except Exception as err:  # onnxruntime refuses a graph whose shapes no longer fit together
        raise StepFailed(problem + f"does not run ({type(err).__name__}); a qonnx transform rewired it") from None
    got = [out[v.name] for v in prepared.graph.output]
    if len(want) != len(got) or any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(want, got)):
        raise StepFailed(problem + "computes other values than the file; a qonnx transform rewired it")


def split_output_forks(model) -> None:
    """Give the exit head its own copy of the features tensor.

    A stage's features are a graph output *and* the head's input; qonnx's channels-last pass
    cannot move its transposes past such a fork ("Must have >1 consumer"). Duplicating the
    (cheap: pooling or activation quantiser) node that produces them makes an ordinary fork
    one step earlier, which the pass handles.
    """

    outputs = {o.name for o in model.graph.output}
    for pos, node in enumerate(list(model.graph.node)):
        for name in node.output:
            consumers = model.find_consumers(name) or []
            if name not in outputs or not consumers:
                continue
            twin = copy.deepcopy(node)
            twin.name = f"{node.name}_to_head"
            twin.output[:] = [f"{name}_to_head" if o == name else f"{o}_to_head" for o in node.output]
            model.graph.node.insert(list(model.graph.node).index(node) + 1, twin)
            for consumer in consumers:
                consumer.input[:] = [f"{name}_to_head" if i == name else i for i in consumer.input]


def compose_stage_onnx(design: stage_ir.Design, k: int, path: Path) -> Path:
    """Stage k's QONNX graph: its exported stages' files chained into one (written to `path`).

    Each file's features output (its first output) feeds the next file's input, and the exit
    heads of all but the last file are removed (onnx.compose.merge_models keeps only the named
    outputs and extracts the graph that computes them). A stage that runs one exported stage
    reads RUN/export/stage_<e>.onnx as it is."""
    import onnx
    from onnx import compose

    stage = design.stages[k]
    files = [design.root / "export" / f"stage_{e}.onnx" for e in stage.export_stages]
    if len(files) == 1:
        return files[0]
    merged, notes = None, []
    for e, f in zip(stage.export_stages, files):
        part = onnx.load(str(f))
        # qonnx's datatype annotations: onnx's Extractor refuses graphs that carry them, so they are set
        # aside (renamed like the tensors) and put back on the tensors that the composed graph keeps
        notes += [(f"x{e}_{a.tensor_name}", a) for a in part.graph.quantization_annotation]
        del part.graph.quantization_annotation[:]
        part = compose.add_prefix(part, f"x{e}_")  # the files share tensor and node names
        if merged is None:
            merged = part
            continue
        merged = compose.merge_models(merged, part, io_map=[(merged.graph.output[0].name, part.graph.input[0].name)],
                                      outputs=[o.name for o in part.graph.output], name=f"stage_{k}")
    # the Extractor lists the graph's input among the value infos too, which qonnx rejects as a duplicate
    io = {t.name for t in [*merged.graph.input, *merged.graph.output]}
    infos = [v for v in merged.graph.value_info if v.name not in io]
    del merged.graph.value_info[:]
    merged.graph.value_info.extend(infos)
    used = {t for n in merged.graph.node for t in [*n.input, *n.output]} | {i.name for i in merged.graph.initializer}
    for name, note in notes:
        if name in used:
            kept = merged.graph.quantization_annotation.add()
            kept.CopyFrom(note)
            kept.tensor_name = name
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(merged, str(path))
    return path


# the ONNX operators of the compute kinds (hls4ml config per layer) and of those on [C, H, W] maps
COMPUTE_OPS = {op for kind in KINDS.values() if kind.computes for op in kind.onnx_ops}
SPATIAL_OPS = {op for kind in KINDS.values() if kind.spatial for op in kind.onnx_ops}
# the config layers a stage is built from (a folded batchnorm leaves no operator of its own)
LAYER_TYPES = "/".join(spec_names(folds_into_previous=False))


def check_operators(model, k: int) -> None:
    import hls4ml

    supported = set(hls4ml.converters.get_supported_onnx_layers())
    for node in model.graph.node:
        if node.op_type not in supported:
            raise UserError(f"stage {k} contains ONNX operator {node.op_type} ({node.name}), which hls4ml cannot "
                            f"convert; build stage {k} from {LAYER_TYPES} layers only")


def stage_hls_config(design: stage_ir.Design, k: int, model) -> dict[str, Any]:
    """hls4ml config of stage k: input grid, accumulator widths and ReuseFactor from design.json."""
    import hls4ml

    stage = design.stages[k]
    cfg = hls4ml.utils.config.config_from_onnx_model(model, granularity="name", backend="Vitis",
                                                     default_precision="fixed<32,16>")
    layers = cfg["LayerName"]
    inp = model.graph.input[0].name
    layers[inp]["Precision"]["result"] = fixed(stage.input.bits, stage.input.frac, stage.input.signed)
    compute_nodes = [n for n in model.graph.node if n.op_type in COMPUTE_OPS]
    compute_layers = [layer for layer in stage.all_layers if layer.computes]
    if len(compute_nodes) != len(compute_layers):
        ops = "/".join(sorted(COMPUTE_OPS))
        raise UserError(f"stage {k}: export/stage_{k}.onnx has {len(compute_nodes)} {ops} nodes but design.json "
                        f"{len(compute_layers)} compute layers; rerun `codesign export {design.root}`")
    for node, layer in zip(compute_nodes, compute_layers):
        acc_frac = layer.input.frac + layer.w_frac
        acc = fixed(layer.acc_bits, acc_frac, True)
        rf = layer.reuse_factor or DEFAULT_REUSE_FACTOR
        entry = layers[node.name]
        # result stays "auto": hls4ml fuses the bias Add into the Dense/Conv only then (bn_fuse)
        entry["Precision"]["accum"] = acc
        entry["ReuseFactor"] = rf
        if rf > 1:
            entry["Strategy"] = "Resource"
    cfg["Model"]["Strategy"] = "Latency"  # per-layer "Resource" where ReuseFactor > 1 (set above)
    return cfg


WEIGHT_LOADERS = ("load_weights_from_txt", "load_compressed_weights_from_txt", "load_exponent_weights_from_txt")


def weight_loader_flags(stage: StageProject, weights_dir: Path | str) -> list[str]:
    """Compiler flags of stage k's object in C simulation.

    hls4ml's txt weights are read at run time in C simulation (compiled-in ap_fixed initialisers
    cost g++ about ten times more) and compiled in for synthesis (__SYNTHESIS__). The loader is a
    template whose path macro WEIGHTS_DIR is baked in per object, but instances of equal
    (typedef'd) types are merged by the linker across stages: renaming the loader per stage keeps
    each stage reading its own folder.
    """
    return [f'-DWEIGHTS_DIR="{weights_dir}"', *(f"-D{f}={f}_{stage.ns}" for f in WEIGHT_LOADERS)]


@dataclass
class StageProject:
    """What the top needs to call one hls4ml stage."""

    index: int
    final: bool
    dir: str  # relative to RUN/hls
    project: str  # hls4ml project_name == its top function
    ns: str  # hls4ml namespace
    in_type: str
    in_size: int
    features_type: str | None
    features_size: int | None
    logits_type: str
    call_args: str
    logits_bits: int
    logits_frac: int
    buffer_depth: int | None  # None in the final stage (no conditional buffer)
    header: str  # include path of the stage's header, relative to top/firmware
    in_tok: str  # token type and stream feeding the stage in the top
    in_stream: str

    @property
    def csim_flags(self) -> str:
        """weight_loader_flags for Vitis HLS's C simulation (cwd <prj>/solution1/csim/build), Tcl-quoted."""
        flags = weight_loader_flags(self, f"../../../../{self.dir}/firmware/weights")
        return " ".join(flags).replace('"', '\\"')


def _stamp(path: Path) -> str:
    # hls4ml stamps projects with a random uuid; a content hash keeps them reproducible
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def convert_stage(design: stage_ir.Design, k: int, out_dir: Path, part: str, clock_ns: float, io_type: str) -> StageProject:
    """Write the hls4ml project of stage k to out_dir and describe its top function."""
    import hls4ml

    onnx_path = compose_stage_onnx(design, k, out_dir.parent / "qonnx" / f"stage_{k}.onnx")
    stage = design.stages[k]
    final = k == design.num_exits - 1
    project = f"{c_name(design.name)}_stage{k}"
    with _quiet():
        model = prepare_stage_onnx(onnx_path)
        check_operators(model, k)
        cfg = stage_hls_config(design, k, model)
        try:
            hm = hls4ml.converters.convert_from_onnx_model(
                model, output_dir=str(out_dir), project_name=project, namespace=project, write_weights_txt=True,
                io_type=io_type, backend="Vitis", part=part, clock_period=clock_ns, hls_config=cfg)
        except Exception as err:  # hls4ml raises bare exceptions for unsupported graphs
            raise UserError(f"hls4ml cannot convert stage {k} ({type(err).__name__}: {str(err).splitlines()[0]}); "
                            f"simplify stage {k} to {LAYER_TYPES} layers") from None
        hm.write()
    ins = hm.get_input_variables()
    outs = hm.get_output_variables()
    want = 1 if final else 2
    if len(ins) != 1 or len(outs) != want:
        raise UserError(f"stage {k}: hls4ml made {len(ins)} inputs / {len(outs)} outputs, expected 1 / {want}; "
                        f"rerun `codesign export {design.root}`")
    logits_var = outs[-1]
    feats_var = None if final else outs[0]
    if int(np.prod(logits_var.shape)) != design.num_classes:
        raise UserError(f"stage {k}: hls4ml's last output has shape {logits_var.shape}, not the {design.num_classes} "
                        f"logits; rerun `codesign export {design.root}`")
    args = ["x"] + ([] if final else ["f.x"]) + ["y"]
    _make_reproducible(out_dir, project, _stamp(onnx_path))
    return StageProject(
        index=k, final=final, dir=f"stage_{k}", project=project, ns=project,
        in_type=ins[0].type.name, in_size=int(np.prod(ins[0].shape)),
        features_type=None if final else feats_var.type.name,
        features_size=None if final else int(np.prod(feats_var.shape)),
        logits_type=logits_var.type.name, call_args=", ".join(args),
        logits_bits=stage.logits.bits, logits_frac=stage.logits.frac,
        buffer_depth=stage.buffer_depth,
        header=f"../../stage_{k}/firmware/{project}.h",
        in_tok="input_tok" if k == 0 else f"features{k - 1}_tok",
        in_stream="stage0_in" if k == 0 else f"forward{k - 1}",
    )


def _make_reproducible(out_dir: Path, project: str, stamp: str) -> None:
    """Per-stage include guards (several stages in one program); no random stamp, absolute path or pickle."""
    guard = project.upper()
    build_lib = out_dir / "build_lib.sh"
    if build_lib.is_file():
        build_lib.write_text(re.sub(r"(?m)^LIB_STAMP=.*$", f"LIB_STAMP={stamp}", build_lib.read_text()))
    for name, old in (("defines.h", "DEFINES_H_"), ("parameters.h", "PARAMETERS_H_")):
        path = out_dir / "firmware" / name
        path.write_text(re.sub(rf"\b{old}\b", f"{guard}_{old}", path.read_text()))
    cfg_path = out_dir / "hls4ml_config.yml"
    if cfg_path.is_file():
        # the file holds the absolute output folder and a pickled ONNX model: keep the readable part
        text = cfg_path.read_text()
        data = yaml.load(text, Loader=_LenientLoader)
        keep = {k: v for k, v in data.items() if k not in ("OnnxModel", "OutputDir", "InputData", "OutputPredictions")}
        keep["OutputDir"] = "."
        keep["Stamp"] = stamp
        cfg_path.write_text(yaml.safe_dump(_plain(keep), sort_keys=True))


class _LenientLoader(yaml.SafeLoader):
    """Reads hls4ml_config.yml, dropping its python-object tags (the pickled ONNX model)."""


_LenientLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
_LenientLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj if isinstance(obj, (str, int, float, bool)) else str(obj)
