"""qonnx's channels-last conversion (ConvertToChannelsLastAndClean), safe where a tensor forks.

qonnx 1.0.0's MoveChanFirstDownstream moves a channels-first Transpose past an elementwise node into
the node's first successor only. Where that output forks, the other branch goes on reading
channels-last data as if it were channels-first. A stage's features are a graph output and also
the exit head's input, so `split_output_forks` makes such a fork after an activation quantiser. In a
stride-2 conv stage (no pooling between the conv and the exit) the head flattened HWC data with CHW
weights, and every C simulation sample was wrong. Here the downstream move stops at a fork, and
MoveTransposePastFork first copies the Transpose into each branch; the pipeline is otherwise
qonnx's, step for step, so a graph without such forks converts exactly as before.
"""
from __future__ import annotations

# imported by prepare_stage_onnx when a stage is converted, not with codesign.hls (qonnx is slow to load)
from qonnx.custom_op.channels_last.base_wrapped_op import to_channels_first_args
from qonnx.transformation.base import Transformation
from qonnx.transformation.channels_last import (AbsorbChanFirstIntoMatMul, InsertChannelsLastDomainsAndTrafos,
                                                MoveChanLastUpstream, MoveTransposePastFork,
                                                RemoveConsecutiveChanFirstAndChanLastTrafos, get_transpose_perms,
                                                move_transpose_past_eltwise)
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit
from qonnx.util.onnx import is_eltwise_optype


def convert_to_channels_last(model):
    model = model.transform(InsertChannelsLastDomainsAndTrafos())
    model = model.transform(RemoveConsecutiveChanFirstAndChanLastTrafos())
    model = model.transform(MoveChanLastUpstream())
    model = model.transform(FoldTransposeIntoQuantInit())
    model = model.transform(RemoveConsecutiveChanFirstAndChanLastTrafos())
    while True:  # down to each fork, into every branch, on down: until nothing moves
        before = model.model.SerializeToString()
        model = model.transform(ForkSafeMoveChanFirstDownstream())
        model = model.transform(MoveTransposePastFork())
        if model.model.SerializeToString() == before:
            break
    model = model.transform(RemoveConsecutiveChanFirstAndChanLastTrafos())
    model = model.transform(AbsorbChanFirstIntoMatMul())
    model = model.transform(InferShapes())
    return model.transform(FoldConstants())


class ForkSafeMoveChanFirstDownstream(Transformation):
    """qonnx's MoveChanFirstDownstream, except that a Transpose whose output forks stays where it is."""

    def apply(self, model):
        outputs = {o.name for o in model.graph.output}
        for node in model.graph.node:
            if node.op_type != "Transpose":
                continue
            ndim = len(model.get_tensor_shape(node.input[0]))
            if list(get_transpose_perms(node, model)) != list(to_channels_first_args(ndim)):
                continue
            successors = model.find_direct_successors(node)
            if model.find_direct_predecessors(node) is None or successors is None:
                continue
            if len(successors) != 1 or node.output[0] in outputs:
                continue  # a fork: MoveTransposePastFork gives each branch its own Transpose first
            if is_eltwise_optype(successors[0].op_type):
                return move_transpose_past_eltwise(node, successors[0], model), True
        return model, False
