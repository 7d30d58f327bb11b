"""The stage IR that every back end reads (design.json), its layer kinds, and the errors every part raises.

The bottom of the flow: numpy and pydantic only, importing nothing else of this repository, so that
hw_models, sim and codesign all build on it and none of them reaches back into another.
"""
from stage_ir.cost import Cost
from stage_ir.design import DESIGN_FILE, EXPORTED_FILE, SCHEMA, THRESHOLD_FORMS, Design, Policy, Stage, StageHardware
from stage_ir.errors import StepFailed, UserError, VerificationFailed, verification_failed
from stage_ir.kinds import KINDS, Layer, LayerKind, MatrixLayer
from stage_ir.tensors import BIAS_BITS, Act, Folding, TensorSpec, accumulator_range, signed_range

__all__ = ["BIAS_BITS", "DESIGN_FILE", "EXPORTED_FILE", "KINDS", "SCHEMA", "Act", "Cost", "Design", "Folding", "Layer",
           "LayerKind", "MatrixLayer", "Policy", "Stage", "StageHardware", "THRESHOLD_FORMS", "TensorSpec", "accumulator_range", "signed_range",
           "StepFailed", "UserError", "VerificationFailed", "verification_failed"]
