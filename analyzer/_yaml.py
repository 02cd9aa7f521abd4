"""Strict YAML for data and rule files: duplicate keys are errors, and every mapping
remembers the line it starts on (``__line__``) and the line of each of its keys
(:func:`key_line`), every list that of each of its items (:func:`item_line`), so errors can
say ``file:line`` of the very key or value at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import RuleError

__all__ = ["SafeLoader", "load_yaml", "clean", "line_of", "key_line", "item_line"]


# libyaml's parser when PyYAML was built with it (about 9x faster on the catalog)
_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SafeLoader = _Base  # for plain data files: yaml.load(text, Loader=SafeLoader)


class _LineLoader(_Base):  # type: ignore[misc, valid-type]
    """Safe loader that refuses duplicate keys and records each mapping's, key's and item's line."""


class _Mapping(dict):
    """A mapping as read, with the line of each key (1-based)."""

    __slots__ = ("lines",)
    lines: dict[Any, int]


class _List(list):
    """A list as read, with the line of each item (1-based)."""

    __slots__ = ("lines",)
    lines: list[int]


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise RuleError(
                f"duplicate key {key!r} (first at line {seen[key] + 1})",
                source=f"{loader.name}:{key_node.start_mark.line + 1}",
            )
        seen[key] = key_node.start_mark.line
    mapping = _Mapping(yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=True))
    mapping.lines = {key: line + 1 for key, line in seen.items()}
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> list:
    items = _List(loader.construct_sequence(node, deep=True))
    items.lines = [child.start_mark.line + 1 for child in node.value]
    return items


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: Path, text: str | None = None) -> Any:
    """Parse one YAML document; a syntax error is a RuleError at its line."""
    loader = _LineLoader(path.read_text(encoding="utf-8") if text is None else text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RuleError(str(getattr(exc, "problem", exc)), source=where) from exc
    finally:
        loader.dispose()


def clean(obj: Any) -> Any:
    """Drop the loader's line bookkeeping from nested mappings."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items() if k != "__line__"}
    if isinstance(obj, list):
        return [clean(v) for v in obj]
    return obj


def line_of(obj: Any, default: int = 0) -> int:
    """The line a mapping starts on (``default`` for anything else)."""
    return obj.get("__line__", default) if isinstance(obj, dict) else default


def key_line(obj: Any, key: Any, default: int = 0) -> int:
    """The line of ``key`` in a mapping read by :func:`load_yaml`; else the mapping's own
    line, else ``default``."""
    lines = getattr(obj, "lines", None)
    if isinstance(lines, dict) and key in lines:
        return lines[key]
    return line_of(obj, default)


def item_line(obj: Any, index: int, default: int = 0) -> int:
    """The line of a list's item ``index`` as read by :func:`load_yaml`; else ``default``."""
    lines = getattr(obj, "lines", None)
    return lines[index] if isinstance(lines, list) and 0 <= index < len(lines) else default
