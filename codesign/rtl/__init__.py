"""The open RTL back end: RUN/design.json to RUN/rtl/ (Verilog top, ROM files, manifest), checked in
Verilator against the integer reference.

`generate_rtl(run)` turns RUN/design.json into RUN/rtl/: a generated top (Jinja2 templates in
templates/rtl/top/) that instantiates the module library (templates/rtl/*.v, see docs/rtl.md), the
ROM init files (weights, biases, threshold-unit tables) and manifest.json (top, sources, ports,
per-layer folding, stream widths). `verify_rtl(run)` simulates the test split through it with the
sim/ harness and compares every sample (class, exit index, the logits at every exit it reached)
with the integer reference.

The top is built as a small netlist in Python (`netlist`: streams, instances, assigns; `top`: the
dataflow, each layer's unit asked of its kind) and rendered by one generic template (`files`), so
every structural decision is in Python and the template stays dumb; `simulate` drives the
Verilator model, `verify` is the `codesign rtl` command. docs/rtl.md ("Generated top") documents
the ports and the data path.
"""
from codesign.rtl.files import MANIFEST, RTL_DIR, VERIFY, generate_rtl, load_manifest, require_design, sim_probes
from codesign.rtl.simulate import (Expected, Outcome, build_sim, compare, decode, input_beats, rom_files, sim_ports,
                                   simulate, split_inputs)
from codesign.rtl.top import TAG_BITS, TopBuilder, input_lanes, layer_unit, top_name
from codesign.rtl.verify import lint_rtl, reference, rtl_command, verify_rtl

__all__ = ["MANIFEST", "RTL_DIR", "VERIFY", "TAG_BITS", "Expected", "Outcome", "TopBuilder", "build_sim", "compare",
           "decode", "generate_rtl", "input_beats", "input_lanes", "layer_unit", "lint_rtl", "load_manifest",
           "reference", "require_design", "rom_files", "rtl_command", "sim_ports", "sim_probes", "simulate",
           "split_inputs", "top_name", "verify_rtl"]
