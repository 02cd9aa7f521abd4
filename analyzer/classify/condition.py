"""Sigma-style condition expressions: ``sel_a and not (filter or sel_b)``, ``1 of sel_*``,
``all of them``. Parsed once into a small tree, evaluated over boolean masks."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["Node", "parse_condition", "ConditionError"]


class ConditionError(ValueError):
    """The condition text is not a valid expression (the message says where)."""


@dataclass(frozen=True, slots=True)
class Node:
    op: str  # "ref", "and", "or", "not", "1of", "allof"
    args: tuple = ()
    name: str = ""

    def names(self) -> set[str]:
        if self.op == "ref":
            return {self.name}
        out: set[str] = set()
        for a in self.args:
            out |= a.names()
        return out

    def evaluate(self, masks: dict[str, np.ndarray]) -> np.ndarray:
        if self.op == "ref":
            return masks[self.name]
        if self.op == "not":
            return ~self.args[0].evaluate(masks)
        if self.op in ("and", "or"):
            left, right = (a.evaluate(masks) for a in self.args)
            return left & right if self.op == "and" else left | right
        chosen = _expand(self.name, masks)
        if not chosen:
            raise ConditionError(f"'{self.name}' names no selection")
        stack = np.vstack([masks[c] for c in chosen])
        return stack.any(axis=0) if self.op == "1of" else stack.all(axis=0)


def _expand(pattern: str, names) -> list[str]:
    if pattern == "them":
        return sorted(n for n in names if not n.startswith("_"))
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


_TOKEN = re.compile(r"\s*(?:(\()|(\))|(\d+|all)\s+of\s+([A-Za-z0-9_*]+)|([A-Za-z_][A-Za-z0-9_]*))")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise ConditionError(f"cannot read the condition at column {pos + 1}: {text[pos : pos + 20]!r}")
        if m.group(1):
            out.append(("(", "(", m.start(1)))
        elif m.group(2):
            out.append((")", ")", m.start(2)))
        elif m.group(3):
            quant = m.group(3)
            if quant not in ("1", "all"):
                raise ConditionError(f"only '1 of' and 'all of' are supported, not '{quant} of'")
            out.append(("1of" if quant == "1" else "allof", m.group(4), m.start(3)))
        else:
            word = m.group(5)
            kind = word.lower() if word.lower() in ("and", "or", "not") else "name"
            out.append((kind, word, m.start(5)))
        pos = m.end()
    return out


def parse_condition(text: str) -> Node:
    """Parse with the usual precedence: not > and > or."""
    toks = _tokens(text)
    pos = 0

    def peek() -> str | None:
        return toks[pos][0] if pos < len(toks) else None

    def take(kind: str) -> tuple[str, str, int]:
        nonlocal pos
        if peek() != kind:
            where = f"column {toks[pos][2] + 1}" if pos < len(toks) else "the end"
            raise ConditionError(f"expected {kind!r} at {where} of {text!r}")
        pos += 1
        return toks[pos - 1]

    def or_expr() -> Node:
        node = and_expr()
        while peek() == "or":
            take("or")
            node = Node("or", (node, and_expr()))
        return node

    def and_expr() -> Node:
        node = not_expr()
        while peek() == "and":
            take("and")
            node = Node("and", (node, not_expr()))
        return node

    def not_expr() -> Node:
        if peek() == "not":
            take("not")
            return Node("not", (not_expr(),))
        return atom()

    def atom() -> Node:
        kind = peek()
        if kind == "(":
            take("(")
            node = or_expr()
            take(")")
            return node
        if kind in ("1of", "allof"):
            _, pattern, _ = take(kind)
            return Node(kind, (), pattern)
        if kind == "name":
            return Node("ref", (), take("name")[1])
        where = f"column {toks[pos][2] + 1}" if pos < len(toks) else "the end"
        raise ConditionError(f"expected a selection name, '(' or 'not' at {where} of {text!r}")

    if not toks:
        raise ConditionError("empty condition")
    node = or_expr()
    if pos != len(toks):
        raise ConditionError(f"unexpected {toks[pos][1]!r} at column {toks[pos][2] + 1} of {text!r}")
    return node


def check_names(node: Node, selections: set[str]) -> list[str]:
    """Problems with the names a condition uses (undefined, or patterns matching none)."""
    problems = [f"condition names an undefined selection {n!r}" for n in sorted(node.names() - selections)]

    def walk(n: Node) -> None:
        if n.op in ("1of", "allof") and not _expand(n.name, selections):
            problems.append(f"'{n.name}' in the condition matches no selection")
        for a in n.args:
            walk(a)

    walk(node)
    return problems
