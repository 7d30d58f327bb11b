"""The HLS back end: per-stage hls4ml projects, a threshold unit and a dataflow top, C simulation.

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
Modules: `project` (hls4ml stages), `top` (threshold units, top, testbench data), `csim`
(g++ C simulation), `command` (the step). See docs/hls.md.
"""

from codesign.hls.project import CXX, CXXFLAGS, DEFAULT_REUSE_FACTOR, HLS_DIR, IO_TYPES, LAYER_TYPES, PARTS, StageProject, TOP_DIR, WEIGHT_LOADERS, c_name, check_operators, compose_stage_onnx, convert_stage, fixed, prepare_stage_onnx, require_inputs, resolve_part, split_output_forks, stage_hls_config, weight_loader_flags  # noqa: F401
from codesign.hls.top import exit_policy, exit_unit_context, test_split, threshold_unit_harness, threshold_unit_source, top_context, write_tb_data, write_top  # noqa: F401
from codesign.hls.csim import CsimRun, ap_types_dir, build_csim, compare, csim_binary, run_c_simulation, run_csim  # noqa: F401
from codesign.hls.command import generate, hls_command  # noqa: F401

__all__ = ['CXX', 'CXXFLAGS', 'CsimRun', 'DEFAULT_REUSE_FACTOR', 'HLS_DIR', 'IO_TYPES', 'LAYER_TYPES', 'PARTS', 'StageProject', 'TOP_DIR', 'WEIGHT_LOADERS', 'ap_types_dir', 'build_csim', 'c_name', 'check_operators', 'compare', 'compose_stage_onnx', 'convert_stage', 'csim_binary', 'exit_policy', 'exit_unit_context', 'fixed', 'generate', 'hls_command', 'prepare_stage_onnx', 'require_inputs', 'resolve_part', 'run_c_simulation', 'run_csim', 'split_output_forks', 'stage_hls_config', 'test_split', 'threshold_unit_harness', 'threshold_unit_source', 'top_context', 'weight_loader_flags', 'write_tb_data', 'write_top']
