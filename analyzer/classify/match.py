"""Vectorized evaluation of detections over the events frame.

A selection item is evaluated once per distinct value of a categorical column (its
categories) and spread to the rows through the codes; numeric columns compare directly.
No Python loop runs per event. Modifiers are looked up in :data:`MODIFIERS`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .model import Item, Rule, Selection

__all__ = ["MODIFIERS", "FLAGS", "NUMERIC", "evaluate_rule", "evaluate_selection", "STRING_ONLY"]

StrTest = Callable[[pa.Array, str, bool], pa.Array]


def _eq(arr: pa.Array, value: str, ci: bool) -> pa.Array:
    return pc.equal(pc.utf8_lower(arr), value.lower()) if ci else pc.equal(arr, value)


def _cidr(arr: pa.Array, value: str, ci: bool) -> pa.Array:
    net = ipaddress.ip_network(value, strict=False)
    out = []
    for v in arr.to_pylist():
        try:
            out.append(v is not None and ipaddress.ip_address(v) in net)
        except ValueError:
            out.append(False)
    return pa.array(out, pa.bool_())


# modifiers that test strings (value → per-string test); the default is equality
MODIFIERS: dict[str, StrTest] = {
    "eq": _eq,
    "contains": lambda a, v, ci: pc.match_substring(a, v, ignore_case=ci),
    "startswith": lambda a, v, ci: pc.starts_with(a, v, ignore_case=ci),
    "endswith": lambda a, v, ci: pc.ends_with(a, v, ignore_case=ci),
    "re": lambda a, v, ci: pc.match_substring_regex(a, v, ignore_case=ci),
    "cidr": _cidr,
}
STRING_ONLY = {"contains", "startswith", "endswith", "re", "cidr"}
# modifiers that change how values combine or compare
FLAGS = {"i": "case-insensitive", "all": "every value must match (default: any)", "exists": "value is true/false"}
NUMERIC: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "gt": np.greater,
    "gte": np.greater_equal,
    "lt": np.less,
    "lte": np.less_equal,
}


def _string_mask(col: pd.Series, test: StrTest, value: str, ci: bool) -> np.ndarray:
    """A column of strings (not categorical: see :func:`_category_mask`) against one value."""
    arr = pa.array(col.astype(object).where(col.notna(), None).tolist(), pa.string())
    return np.asarray(pc.fill_null(test(arr, value, ci), False).to_numpy(zero_copy_only=False), dtype=bool)


def _category_mask(col: pd.Series, test: StrTest, values: tuple, ci: bool, every: bool) -> np.ndarray:
    """A categorical column against several values at once: the values are tested on the
    categories, combined (any, or all with ``every``) per category, and the rows look
    their category up once. A ``None`` value matches the null rows."""
    cats = pa.array([str(c) for c in col.cat.categories], pa.string())
    per_value = [
        np.asarray(test(cats, str(v), ci).to_numpy(zero_copy_only=False), dtype=bool)
        if v is not None and len(cats)
        else np.zeros(len(cats), dtype=bool)
        for v in values
    ]
    combine = np.all if every else np.any
    lookup = np.append(combine(np.vstack(per_value), axis=0), combine([v is None for v in values]))
    return lookup[col.cat.codes.to_numpy()]  # code -1 (null) takes the last entry


# nullable integer columns whose values a narrow integer array holds exactly (and a float compares exactly)
_NARROW = {
    "Int8": np.int16,
    "Int16": np.int16,
    "UInt8": np.int16,
    "UInt16": np.int32,
    "Int32": np.int32,
    "UInt32": np.int64,
}


def _numbers(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column's values as numbers, and which rows have one. Small nullable integers
    stay integers (a UInt16 port column: 4 bytes a row, not a float64 copy per value
    compared); anything else becomes float64 (NaN: not a number)."""
    narrow = _NARROW.get(str(col.dtype))
    if narrow is not None:
        return col.to_numpy(dtype=narrow, na_value=0), col.notna().to_numpy()
    nums = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return nums, ~np.isnan(nums)


def _expand(values: tuple, variables: dict[str, tuple] | None) -> tuple:
    """``$name`` values come from the platform profile."""
    out: list = []
    for v in values:
        if isinstance(v, str) and v.startswith("$"):
            out.extend((variables or {}).get(v[1:], ()))
        else:
            out.append(v)
    return tuple(out)


def _item_mask(frame: pd.DataFrame, item: Item, variables: dict[str, tuple] | None = None) -> np.ndarray:
    col = frame[item.field]
    values = _expand(item.values, variables)
    mods = [m for m in item.modifiers if m not in FLAGS]
    ci = "i" in item.modifiers
    if "exists" in item.modifiers:
        want = bool(values[0])
        return col.notna().to_numpy() == want
    op = mods[0] if mods else "eq"
    if not values:
        return np.zeros(len(frame), dtype=bool)
    if isinstance(col.dtype, pd.CategoricalDtype) and op not in NUMERIC:
        return _category_mask(col, MODIFIERS[op], values, ci, "all" in item.modifiers)
    masks = []
    numbers: tuple[np.ndarray, np.ndarray] | None = None  # once per item, not per value
    for value in values:
        if value is None:
            masks.append(col.isna().to_numpy())
        elif op in NUMERIC or (
            op == "eq"
            and not isinstance(col.dtype, pd.CategoricalDtype)
            and col.dtype != object
            and not str(col.dtype).startswith("string")
        ):
            if numbers is None:
                numbers = _numbers(col)
            nums, known = numbers
            masks.append(NUMERIC.get(op, np.equal)(nums, float(value)) & known)
        else:
            masks.append(_string_mask(col, MODIFIERS[op], str(value), ci))
    if not masks:
        return np.zeros(len(frame), dtype=bool)
    stack = np.vstack(masks)
    return stack.all(axis=0) if "all" in item.modifiers else stack.any(axis=0)


def evaluate_selection(frame: pd.DataFrame, sel: Selection, variables: dict[str, tuple] | None = None) -> np.ndarray:
    """Any alternative whose items all hold."""
    out = np.zeros(len(frame), dtype=bool)
    for items in sel.alternatives:
        mask = np.ones(len(frame), dtype=bool)
        for item in items:
            mask &= _item_mask(frame, item, variables)
        out |= mask
    return out


def evaluate_rule(frame: pd.DataFrame, rule: Rule, variables: dict[str, tuple] | None = None) -> np.ndarray:
    """The rows the rule's detection selects (group conditions are applied elsewhere)."""
    masks = {name: evaluate_selection(frame, sel, variables) for name, sel in rule.selections.items()}
    return np.asarray(rule.condition.evaluate(masks), dtype=bool)
