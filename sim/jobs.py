"""How many compiler processes one build may run (HLS C simulation, Verilator models).

A plain run uses every core it may run on. A sweep task owns only the cores
it declared to Ray (`resources.num_cpus`); sweep_worker exports that number
in CODESIGN_BUILD_JOBS so that two concurrent points each compile on their
own core instead of both spreading over both.
"""
from __future__ import annotations

import os

ENV = "CODESIGN_BUILD_JOBS"


def build_jobs() -> int:
    """Compiler processes per build: $CODESIGN_BUILD_JOBS, else the cores this process may use."""
    value = os.environ.get(ENV, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, len(os.sched_getaffinity(0)))
