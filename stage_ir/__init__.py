"""The stage IR that every back end reads (design.json) and the errors every part raises.

The bottom of the flow: numpy and pydantic only, importing nothing else of this repository, so that
hw_models, sim and codesign all build on it and none of them reaches back into another.
"""
from stage_ir.design import (BIAS_BITS, COMPUTE_KINDS, DESIGN_FILE, EXPORTED_FILE, SCHEMA, Act, Conv2dLayer,
                             DenseLayer, Design, FlattenLayer, Folding, Layer, MaxPool2dLayer, Policy, Stage,
                             TensorSpec, accumulator_range, signed_range)
from stage_ir.errors import StepFailed, UserError, VerificationFailed, verification_failed

__all__ = ["BIAS_BITS", "COMPUTE_KINDS", "DESIGN_FILE", "EXPORTED_FILE", "SCHEMA", "Act", "Conv2dLayer", "DenseLayer",
           "Design", "FlattenLayer", "Folding", "Layer", "MaxPool2dLayer", "Policy", "Stage", "TensorSpec",
           "accumulator_range", "signed_range", "StepFailed", "UserError", "VerificationFailed", "verification_failed"]
