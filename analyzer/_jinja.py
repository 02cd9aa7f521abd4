"""The Jinja environment class every template of authtriage renders with."""

from __future__ import annotations

from typing import Any

import jinja2

__all__ = ["Environment"]

_DICT_ATTRIBUTES = frozenset(dir(dict))


class Environment(jinja2.Environment):
    """``finding.verdict`` on a dict without raising first: Jinja tries the attribute,
    catches AttributeError and only then takes the item — per field of each of thousands
    of findings that exception was half of rendering a large report. Same result: a dict
    has no attributes but its methods, which still win as before."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)
