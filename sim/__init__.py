"""Verilator harness: build RTL tops with a generic stream testbench and run them.

`sim.build.build` compiles (cached by content hash); `sim.run.run_stream`
drives the executable with input beats under random gaps/backpressure and
returns the output beats with cycle stamps; `sim.rtl` finds the module
library's files and packs data the way the modules expect it.
"""
from sim.build import Port, Probe, Stream, TopPorts, build, fst_missing, lint, verilator_bin
from sim.rtl import rtl_dir, rtl_sources
from sim.run import SimResult, run_stream

__all__ = ["Port", "Probe", "Stream", "TopPorts", "build", "fst_missing", "lint", "verilator_bin", "rtl_dir",
           "rtl_sources", "SimResult", "run_stream"]
