"""Analytical models for EE dataflows on FPGAs (numpy only, never torch)."""
from .devices import Device, get_device, known_devices, add_devices
from .dse import plot_pareto, run_dse
from .exit_subsets import chosen_design
from .estimate import estimate, plot_throughput_vs_exit_rate, render_markdown
from .flow_sim import BufferTiming
from .stages import decide, stage_costs
from .system import path_latencies, reach_fractions, system_throughput

__all__ = ["Device", "get_device", "known_devices", "add_devices", "run_dse", "chosen_design", "plot_pareto",
           "estimate", "render_markdown", "BufferTiming", "plot_throughput_vs_exit_rate", "stage_costs", "decide",
           "system_throughput", "reach_fractions", "path_latencies"]
