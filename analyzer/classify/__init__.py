"""Rules over the normalized events: model, loading and vectorized detection.

The cause assignment (priority order, group conditions: counts, distinct values,
periodicity, host role, ordering) builds on this package.
"""

from .condition import ConditionError, parse_condition
from .load import RuleSet, check_rules, load_rules, parse_rule_file
from .match import evaluate_rule, evaluate_selection
from .model import CAUSES, CONFIDENCES, VERDICTS, Rule

__all__ = [
    "CAUSES",
    "CONFIDENCES",
    "VERDICTS",
    "ConditionError",
    "Rule",
    "RuleSet",
    "check_rules",
    "evaluate_rule",
    "evaluate_selection",
    "load_rules",
    "parse_condition",
    "parse_rule_file",
]
