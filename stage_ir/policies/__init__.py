"""The exit-policy registry: one module per policy (margin, max_softmax, entropy, patience) owns
its tables, integer and float rules, threshold range, calibration levels, RTL parameters, HLS
context and cost (docs/architecture.md, "Add an exit policy"); `view` walks exits through them."""
from stage_ir.policies.base import ExitPolicy
from stage_ir.policies.registry import ARGMAX, DEFAULT, POLICIES, REGISTRY, get
from stage_ir.policies.tables import (LOG_FRAC, LOG_MANT, MAX_ENTRIES, PROB_BITS, entropy_lhs, exp_lookup,
                                      exp_table, log2_fixed, log_table, softmax_sum, top_two)
from stage_ir.policies.view import (IntegerScores, IntegerView, agreement, check_policy, check_stored,
                                    check_thresholds, decide, exit_scores, float_decisions, float_scores,
                                    float_to_int_threshold, int_to_float_threshold, integer_view, make_exit_table,
                                    make_tables, never_threshold, outcome, real_logits, threshold_range,
                                    view_from_scores)

__all__ = ["ARGMAX", "DEFAULT", "POLICIES", "REGISTRY", "ExitPolicy", "get", "LOG_FRAC", "LOG_MANT", "MAX_ENTRIES",
           "PROB_BITS", "entropy_lhs", "exp_lookup", "exp_table", "log2_fixed", "log_table", "softmax_sum", "top_two",
           "IntegerScores", "IntegerView", "agreement", "check_policy", "check_stored", "check_thresholds", "decide",
           "exit_scores", "float_decisions", "float_scores", "float_to_int_threshold", "int_to_float_threshold",
           "integer_view", "make_exit_table", "make_tables", "never_threshold", "outcome", "real_logits",
           "threshold_range", "view_from_scores"]
