"""Rules over the normalized events: model, loading and vectorized detection.

The cause assignment (priority order, group conditions: counts, distinct values,
periodicity, host role, ordering) builds on this package; the causes themselves are data
(``rules/causes.yaml``, :mod:`.causes`).
"""

from .causes import Cause, Causes, load_causes, parse_causes
from .check import check_rules
from .condition import ConditionError, parse_condition
from .load import RuleSet, load_rules, parse_rule_file
from .match import evaluate_rule, evaluate_selection
from .model import CONFIDENCES, VERDICTS, Rule

__all__ = [
    "CONFIDENCES",
    "VERDICTS",
    "Cause",
    "Causes",
    "ConditionError",
    "Rule",
    "RuleSet",
    "check_rules",
    "evaluate_rule",
    "evaluate_selection",
    "load_causes",
    "load_rules",
    "parse_causes",
    "parse_condition",
    "parse_rule_file",
]
