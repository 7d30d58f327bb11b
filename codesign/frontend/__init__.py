"""The front end: the run config and its data, the Brevitas early-exit network, its training, its export to
QONNX and the stage IR, and the per-exit thresholds calibrated (and evaluated) in integer arithmetic."""
