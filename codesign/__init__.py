"""codesign: co-design toolkit for quantised early-exit networks on FPGAs."""

__version__ = "0.1.0"
