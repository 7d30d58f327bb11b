"""HLS generation: per-stage hls4ml projects, a threshold unit and a dataflow top, C simulation.

`hls_command(run, csim, part, clock_ns, io)` writes RUN/hls/:

    stage_<k>/   hls4ml project of stage k (backbone segment + exit head), from RUN/export/stage_<k>.onnx;
                 a stage that runs several exported stages (an exit the DSE dropped) from
                 qonnx/stage_<k>.onnx, one graph composed of their files (compose_stage_onnx)
    top/         firmware/<top>.{h,cpp} (dataflow top: input, stages, threshold units, conditional
                 buffers, exit merge), firmware/threshold_unit.h, tb/<top>_test.cpp, tb_data/,
                 build_prj.tcl, csim_include/ (stand-ins for vendor headers, g++ only)
    csim.json    with csim=True: HLS C simulation against the integer reference

Precisions come from design.json (input grid, accumulator widths), ReuseFactor from
`layer.reuse_factor` (default 1, Latency strategy; > 1 selects the Resource strategy).
See docs/hls.md.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from codesign import ir
from stage_ir import policies as pol
from stage_ir.errors import UserError, verification_failed
from sim.jobs import build_jobs
from codesign.scratch import replace_dir
from codesign.timings import write_json
import stage_ir
from stage_ir.kinds import spec_names

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
    """The TOOLCHAIN.md recipe: cleanup, channels-last, Gemm -> MatMul, cleanup."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(path)))
    if any(n.op_type in ("Conv", "MaxPool") for n in model.graph.node):
        split_output_forks(model)
        model = cleanup_model(model)  # shapes of the new tensors
    model = model.transform(ConvertToChannelsLastAndClean())
    model = model.transform(GemmToMatMul())
    return cleanup_model(model)


def split_output_forks(model) -> None:
    """Give the exit head its own copy of the features tensor.

    A stage's features are a graph output *and* the head's input; qonnx's channels-last pass
    cannot move its transposes past such a fork ("Must have >1 consumer"). Duplicating the
    (cheap: pooling or activation quantiser) node that produces them makes an ordinary fork
    one step earlier, which the pass handles.
    """
    import copy

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
    compute_nodes = [n for n in model.graph.node if n.op_type in ("MatMul", "Conv")]
    compute_layers = [layer for layer in stage.all_layers if layer.computes]
    if len(compute_nodes) != len(compute_layers):
        raise UserError(f"stage {k}: export/stage_{k}.onnx has {len(compute_nodes)} MatMul/Conv nodes but design.json "
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


# --------------------------------------------------------------------------- threshold unit, top, testbench


def _templates():
    return resources.files("codesign.templates") / "hls"


def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(_templates())), trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def exit_unit_context(policy: str, tables: dict[str, Any], k: int, threshold: int | None) -> dict[str, Any]:
    """Template values of exit k's threshold unit (threshold None: the final classifier).

    Widths follow from the policy tables: logits are ap_int<logit_bits[k]>, sums and scores
    are just wide enough for their documented ranges (docs/policies.md).
    """
    num_exits, num_classes = tables["num_exits"], tables["num_classes"]
    ex: dict[str, Any] = {"index": k, "final": threshold is None, "bits": int(tables["logit_bits"][k]),
                          "frac": int(tables["logit_frac"][k])}
    if threshold is None:
        return ex
    tab = tables["exits"][k]
    lo, hi = pol.threshold_range(policy, tables, k)
    ex.update(default_threshold=int(threshold), never_threshold=pol.never_threshold(policy, tables, k))
    count_bits = max(1, num_exits.bit_length())
    pol.get(policy).hls_context(ex, tab, lo, hi, num_classes, count_bits)
    assert lo <= threshold <= hi
    return ex


def threshold_unit_source(policy: str, tables: dict[str, Any], thresholds: Sequence[int], namespace: str,
                          design_name: str = "design") -> str:
    """threshold_unit.h: one decide_<k>() per exit (the last is the final classifier's argmax)."""
    num_exits = tables["num_exits"]
    exits = [exit_unit_context(policy, tables, k, thresholds[k] if k < num_exits - 1 else None)
             for k in range(num_exits)]
    return _env().get_template("threshold_unit.h.j2").render(
        design_name=design_name, policy=policy, namespace=namespace, guard=f"{namespace.upper()}_THRESHOLD_UNIT_H_",
        num_classes=tables["num_classes"], num_exits=num_exits,
        class_bits=max(1, (tables["num_classes"] - 1).bit_length()), count_bits=max(1, num_exits.bit_length()),
        exits=exits)


def threshold_unit_harness(units: Sequence[tuple[str, str, dict[str, Any]]]) -> str:
    """A standalone C++ driver of threshold units: (namespace, header, tables) per unit (used by the tests)."""
    ctx = [{"namespace": ns, "header": header,
            "exits": [{"index": k, "final": k == tables["num_exits"] - 1} for k in range(tables["num_exits"])]}
           for ns, header, tables in units]
    return _env().get_template("threshold_unit_tb.cpp.j2").render(units=ctx)


def exit_policy(design: stage_ir.Design) -> tuple[str, dict[str, Any], list[int]]:
    """(kind, tables, thresholds) of the design's threshold units; a design without early exits has
    only the final classifier (an argmax, `margin` in the templates) and no tables but its logit grid."""
    if design.policy is not None:
        return design.policy.kind, design.policy.tables, list(design.policy.thresholds)
    last = design.stages[-1].logits
    return pol.ARGMAX, {"num_exits": 1, "num_classes": design.num_classes, "logit_frac": [last.frac],
                      "logit_bits": [last.bits], "exits": []}, []


def top_context(design: stage_ir.Design, stages: list[StageProject], part: str, clock_ns: float, io_type: str) -> dict:
    kind, tables, thresholds = exit_policy(design)
    top = f"{c_name(design.name)}_top"
    namespace = f"{c_name(design.name)}_ee"
    exits = [exit_unit_context(kind, tables, k, thresholds[k] if k < design.num_exits - 1 else None)
             for k in range(design.num_exits)]
    spec = design.input
    in_type = f"ap_{'fixed' if spec.signed else 'ufixed'}<{spec.bits}, {spec.bits - spec.frac}>"
    return {
        "design_name": design.name, "top": top, "namespace": namespace, "guard": f"{top.upper()}_H_",
        "policy": kind, "io": io_type, "num_exits": design.num_exits, "stages": stages,
        "early_exits": exits[:-1], "in_bits": spec.bits, "in_frac": spec.frac, "in_size": spec.size,
        "in_beat_bits": 8 * ((spec.bits + 7) // 8), "in_type": in_type,
        "results_depth": sum(s.buffer_depth for s in stages if not s.final) + 2,
        "part": part, "clock_ns": clock_ns,
    }


def write_top(design: stage_ir.Design, hls_dir: Path, stages: list[StageProject], part: str, clock_ns: float,
              io_type: str) -> dict:
    """Render the top project (firmware, testbench, Tcl, csim stand-in headers)."""
    ctx = top_context(design, stages, part, clock_ns, io_type)
    top_dir = hls_dir / TOP_DIR
    env = _env()
    files = {
        f"firmware/{ctx['top']}.h": env.get_template("top.h.j2").render(**ctx),
        f"firmware/{ctx['top']}.cpp": env.get_template("top.cpp.j2").render(**ctx),
        "firmware/threshold_unit.h": threshold_unit_source(*exit_policy(design), ctx["namespace"], design.name),
        f"tb/{ctx['top']}_test.cpp": env.get_template("tb.cpp.j2").render(**ctx),
        "build_prj.tcl": env.get_template("build_prj.tcl.j2").render(**ctx),
        "csim_include/ap_axi_sdata.h": (_templates() / "csim_include" / "ap_axi_sdata.h").read_text(),
    }
    for rel, text in files.items():
        path = top_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ctx


# --------------------------------------------------------------------------- data and reference


def test_split(run: Path) -> np.ndarray:
    """Integer test inputs [N, *input.shape] of the run's data set."""
    from codesign.calibrate_run import run_dataset

    return run_dataset(run).test.x


def write_tb_data(top_dir: Path, x: np.ndarray, design: stage_ir.Design) -> None:
    """tb_data/tb_input_features.dat (tag, flat integers) and tb_expected.dat (tag, class, exit)."""
    from codesign.reference import design_view

    flat = x.reshape(len(x), -1).astype(np.int64)
    lines = [" ".join(map(str, [i, *row])) for i, row in enumerate(flat.tolist())]
    tb_data = top_dir / "tb_data"
    tb_data.mkdir(parents=True, exist_ok=True)
    (tb_data / "tb_input_features.dat").write_text("\n".join(lines) + "\n")
    _, view = design_view(design, x)
    rows = zip(range(len(x)), view.exit_class.tolist(), view.exit_index.tolist())
    (tb_data / "tb_expected.dat").write_text("".join(f"{t} {c} {e}\n" for t, c, e in rows))


# --------------------------------------------------------------------------- C simulation


def ap_types_dir() -> Path:
    import hls4ml

    return Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"


def _compile(args: list[str], cwd: Path) -> None:
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if res.returncode:
        tail = "\n".join(res.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"C simulation build failed: {' '.join(args)}\n{tail}")


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


def csim_binary(hls_dir: Path, top: str) -> Path:
    """The C simulation executable that `build_csim` writes (run it from hls_dir/top, see tb/*_test.cpp)."""
    return hls_dir / TOP_DIR / "csim_build" / f"{top}_csim"


def build_csim(hls_dir: Path, ctx: dict, stages: list[StageProject], jobs: int | None = None) -> Path:
    """Compile every stage and the top + testbench with g++ (one object each); return the binary."""
    if shutil.which(CXX) is None:
        raise UserError(f"C simulation needs a C++ compiler ({CXX}); install g++ or run without --csim")
    top_dir = hls_dir / TOP_DIR
    build = Path("csim_build")
    (top_dir / build).mkdir(exist_ok=True)
    # every path relative to top/ (where g++ and the binary run): objects and binary hold no run folder's
    # name, so a run moved elsewhere, or built in a scratch folder and moved, is the same bytes
    inc = ["-I", str(ap_types_dir()), "-I", "csim_include"]
    up = Path("..")
    jobs_args = [[CXX, *CXXFLAGS, *inc, *weight_loader_flags(s, up / s.dir / "firmware" / "weights"),
                  "-c", str(up / s.dir / "firmware" / f"{s.project}.cpp"), "-o", str(build / f"{s.project}.o")]
                 for s in stages]
    top, tb = Path("firmware") / f"{ctx['top']}.cpp", Path("tb") / f"{ctx['top']}_test.cpp"
    jobs_args += [[CXX, *CXXFLAGS, *inc, "-c", str(src), "-o", str(build / f"{src.stem}.o")] for src in (top, tb)]
    with ThreadPoolExecutor(max_workers=jobs or build_jobs()) as pool:
        list(pool.map(lambda a: _compile(a, top_dir), jobs_args))
    binary = csim_binary(hls_dir, ctx["top"])
    _compile([CXX, *[a[-1] for a in jobs_args], "-o", str(binary.relative_to(top_dir))], top_dir)
    return binary


@dataclass
class CsimRun:
    exit_index: np.ndarray  # [N] from the output stream, in output order
    exit_class: np.ndarray
    tags: np.ndarray
    log: list[dict[int, np.ndarray]]  # per exit: tag -> logits
    decisions: list[dict[int, int]]  # per exit: tag -> decision


def run_csim(binary: Path, top_dir: Path, thresholds: Sequence[int], num_exits: int, scratch: Path) -> CsimRun:
    """Run the C simulation once with the given threshold registers."""
    results, log = scratch / "results.txt", scratch / "exits.log"
    args = [str(binary), "tb_data/tb_input_features.dat", str(results), str(log), *map(str, thresholds)]
    res = subprocess.run(args, cwd=top_dir, capture_output=True, text=True)
    if res.returncode != 0:  # explicit thresholds: the testbench does not compare, so any failure is a crash
        raise RuntimeError(f"C simulation failed (exit {res.returncode}): {res.stderr.strip()[-2000:]}")
    out = np.loadtxt(results, dtype=np.int64, ndmin=2)
    logits: list[dict[int, np.ndarray]] = [{} for _ in range(num_exits)]
    decisions: list[dict[int, int]] = [{} for _ in range(num_exits)]
    for line in log.read_text().splitlines():
        k, tag, dec, _cls, _score, *z = map(int, line.split())
        logits[k][tag] = np.array(z, dtype=np.int64)
        decisions[k][tag] = dec
    return CsimRun(out[:, 2], out[:, 1], out[:, 0], logits, decisions)


def compare(design: stage_ir.Design, ref_logits: list[np.ndarray], view: pol.IntegerView, sim: CsimRun,
            all_exits: CsimRun) -> np.ndarray:
    """Per-sample mismatch flags: every exit's logits (all-through run), decisions, class, exit index."""
    n = len(ref_logits[0])
    bad = np.zeros(n, dtype=bool)
    if len(sim.tags) != n or not np.array_equal(sim.tags, np.arange(n)):
        return np.ones(n, dtype=bool)  # lost, duplicated or reordered samples
    bad |= sim.exit_index != view.exit_index
    bad |= sim.exit_class != view.exit_class
    for k in range(design.num_exits):
        for tag in range(n):
            z = all_exits.log[k].get(tag)
            if z is None or not np.array_equal(z, ref_logits[k][tag]):
                bad[tag] = True
        # the real run: exactly the samples that reach exit k are seen there, with the reference decision
        reach = np.flatnonzero(view.exit_index >= k)
        if set(sim.decisions[k]) != set(reach.tolist()):
            bad[:] = True
        for tag in reach.tolist():
            want = 1 if k == design.num_exits - 1 else int(view.decisions[k][tag])
            if sim.decisions[k].get(tag) != want or not np.array_equal(sim.log[k].get(tag), ref_logits[k][tag]):
                bad[tag] = True
    return bad


def run_c_simulation(design: stage_ir.Design, hls_dir: Path, ctx: dict, stages: list[StageProject],
         x: np.ndarray) -> dict:
    """Compile and run the C simulation on x; compare with the integer reference; the csim.json dict."""
    from codesign.reference import design_view

    kind, tables, thresholds = exit_policy(design)
    start = time.perf_counter()
    binary = build_csim(hls_dir, ctx, stages)
    compile_seconds = time.perf_counter() - start
    ref_logits, view = design_view(design, x)
    never = [pol.never_threshold(kind, tables, k) for k in range(design.num_exits - 1)]
    top_dir = hls_dir / TOP_DIR
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="csim-") as tmp:
        # debug path: "never" registers send every sample through every stage, so every exit logs its logits
        (Path(tmp) / "all").mkdir()
        (Path(tmp) / "real").mkdir()
        all_exits = run_csim(binary, top_dir, never, design.num_exits, Path(tmp) / "all")
        real = run_csim(binary, top_dir, thresholds, design.num_exits, Path(tmp) / "real")
    run_seconds = time.perf_counter() - start
    bad = compare(design, ref_logits, view, real, all_exits)
    n = len(x)
    counts = np.bincount(real.exit_index.clip(0, design.num_exits - 1), minlength=design.num_exits)
    ref_counts = np.bincount(view.exit_index, minlength=design.num_exits)
    return {
        "samples": int(n),
        "mismatches": int(bad.sum()),
        "mismatched_samples": [int(i) for i in np.flatnonzero(bad)[:20]],
        "policy": design.policy.kind if design.policy else None,
        "thresholds": [int(t) for t in thresholds],
        "export_stages": [st.export_stages for st in design.stages],
        "exits": [{"index": k, "samples": int(counts[k]), "exit_fraction": float(counts[k] / n),
                   "reference_samples": int(ref_counts[k])} for k in range(design.num_exits)],
        "compile_seconds": round(compile_seconds, 3),
        "run_seconds": round(run_seconds, 3),
        "checked": "every exit's logits (thresholds at 'never'), decisions, class and exit index (calibrated "
                   "thresholds) per test sample against codesign.reference + stage_ir.policies",
    }


# --------------------------------------------------------------------------- entry point


def generate(run: Path, part: str | None = None, clock_ns: float | None = None, io: str = "io_parallel",
             out: Path | None = None) -> tuple[stage_ir.Design, Path, dict, list[StageProject]]:
    """Write the HLS projects of RUN into `out` (default RUN/hls); return what C simulation needs."""
    run = Path(run)
    if io not in IO_TYPES:
        raise UserError(f"io type {io!r} is not supported by the HLS generator; use one of {', '.join(IO_TYPES)}")
    design = require_inputs(run)
    full_part = resolve_part(part, design.device)
    clock = float(clock_ns if clock_ns is not None else design.clock_ns)
    if clock <= 0:
        raise UserError(f"clock period {clock} ns is not positive; give --clock-ns > 0")
    hls_dir = Path(out) if out is not None else run / HLS_DIR
    # built next to the destination and moved into place: no half-written project on failure
    with replace_dir(hls_dir) as tmp:
        stages = [convert_stage(design, k, tmp / f"stage_{k}", full_part, clock, io) for k in range(design.num_exits)]
        ctx = write_top(design, tmp, stages, full_part, clock, io)
        write_tb_data(tmp / TOP_DIR, test_split(run), design)
    return design, hls_dir, ctx, stages


def hls_command(run: Path, csim: bool, part: str | None, clock_ns: float | None, io: str) -> dict:
    """`codesign hls RUN [--csim]`: write RUN/hls/ and, with csim, RUN/hls/csim.json.

    Returns {"hls_dir", "top", "stages", "part", "clock_ns"} plus, with csim, "csim" (the csim.json dict).
    """
    run = Path(run).resolve()  # g++ runs in other folders: a relative run path would not reach the sources
    design, hls_dir, ctx, stages = generate(run, part, clock_ns, io)
    report: dict[str, Any] = {"hls_dir": str(hls_dir), "top": ctx["top"], "stages": [s.project for s in stages],
                              "part": ctx["part"], "clock_ns": ctx["clock_ns"]}
    if csim:
        result = run_c_simulation(design, hls_dir, ctx, stages, test_split(run))
        write_json(hls_dir / "csim.json", result)
        report["csim"] = result
        if result["mismatches"]:
            raise verification_failed("HLS C simulation", result["mismatches"], result["samples"],
                                      result["mismatched_samples"], hls_dir / "csim.json")
    return report
