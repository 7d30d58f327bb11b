"""The exit policies by name (the one list the CLI, the config and every back end take them from)."""
from __future__ import annotations

from stage_ir.policies.base import ExitPolicy, policy_error
from stage_ir.policies.entropy import Entropy
from stage_ir.policies.margin import Margin
from stage_ir.policies.max_softmax import MaxSoftmax
from stage_ir.policies.patience import Patience

REGISTRY: dict[str, ExitPolicy] = {p.name: p for p in (Margin(), MaxSoftmax(), Entropy(), Patience())}
POLICIES: tuple[str, ...] = tuple(REGISTRY)
DEFAULT = MaxSoftmax.name  # what the config, calibrate and the CLI use when not told
# the final exit's unit: margin >= 0, the argmax (it always exits, its table is the logit grid only)
ARGMAX = Margin.name


def get(name: str) -> ExitPolicy:
    try:
        return REGISTRY[name]
    except KeyError:
        raise policy_error(name, POLICIES) from None
