"""The package's import graph: no module of ``analyzer`` imports another that (directly or
not) imports it back, and none takes a private name (``_x``) from another module.

What counts as an import here (read from the source with :mod:`ast`, nothing imported):

- every ``import`` and ``from … import`` of an ``analyzer`` module, relative ones resolved,
  at module level *and inside functions*: a function-level import that only dodges a cycle
  at import time still ties the two modules to each other, so it is an edge like any other
  (a cycle through one is rejected whether the other side imports at module level or not);
- ``from pkg import name`` is an edge to the submodule ``pkg.name`` when there is one,
  else to the package ``pkg`` (its ``__init__``);
- not the imports under ``if TYPE_CHECKING:`` (they never run; annotations only), and not
  the implicit import of a module's parent packages (Python runs ``analyzer/__init__`` before
  any submodule, whatever the submodule imports).

A private name is one that starts with ``_`` but is not a dunder (``__version__`` is
public). Taking one from another module — ``from x import _name``, or ``x._name`` on a
module bound by an import — is what this rejects; a private *module* (``_memory``) whose
public names are imported is fine.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "analyzer"

@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of the package
    name: str  # the name taken from it ("" for the module itself)
    line: int
    in_function: bool


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@cache
def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}


def _walk(node: ast.AST, in_function: bool = False):
    """Import nodes under ``node`` with whether they sit in a function; TYPE_CHECKING blocks skipped."""
    for child in ast.iter_child_nodes(node):
        if _type_checking_only(child):
            for orelse in child.orelse:
                yield from _walk(orelse, in_function)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function
        yield from _walk(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))


@cache
def _imports() -> tuple[tuple[Import, ...], dict[str, dict[str, str]]]:
    """Every import of a package module, and per module the names its imports bind to modules."""
    modules = _modules()
    found: list[Import] = []
    bound: dict[str, dict[str, str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        aliases = bound.setdefault(name, {})
        for node, in_function in _walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "analyzer" and alias.name in modules:
                        found.append(Import(name, alias.name, "", node.lineno, in_function))
                        if alias.asname:
                            aliases[alias.asname] = alias.name
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "analyzer":
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in modules:  # a submodule: the module itself is taken
                    found.append(Import(name, sub, "", node.lineno, in_function))
                    aliases[alias.asname or alias.name] = sub
                else:
                    found.append(Import(name, source, alias.name, node.lineno, in_function))
    return tuple(found), bound


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def _graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], Import]]:
    edges: dict[str, set[str]] = {m: set() for m in _modules()}
    where: dict[tuple[str, str], Import] = {}
    for imp in _imports()[0]:
        if imp.target == imp.importer:
            continue
        edges[imp.importer].add(imp.target)
        where.setdefault((imp.importer, imp.target), imp)
    return edges, where


def test_the_walk_sees_the_package():
    """The checks below are only as good as the walk: it finds the modules, relative and
    function-level imports, and leaves TYPE_CHECKING ones out."""
    imports, bound = _imports()
    modules = _modules()
    assert {"analyzer", "analyzer.ingest", "analyzer.ingest.runner", "analyzer.cli"} <= modules.keys()
    edges = {(i.importer, i.target, i.name, i.in_function) for i in imports}
    assert ("analyzer.ingest.runner", "analyzer.ingest.readers", "READERS", False) in edges  # relative
    assert ("analyzer.cli", "analyzer.classify", "check_rules", True) in edges  # inside a function
    assert ("analyzer.evidence", "analyzer.ingest.winreaders", "evtx_texts", True) in edges
    assert not any(i.importer == "analyzer.ingest.syslog" and i.target == "analyzer.ingest.types" for i in imports)
    assert bound["analyzer.ingest.textlog"]["syslog"] == "analyzer.ingest.syslog"
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    edges, where = _graph()
    problems = []
    for component in _cycles(edges):
        inside = set(component)
        links = [where[(a, b)] for a in component for b in sorted(edges[a] & inside)]
        problems.append(
            " ↔ ".join(component)
            + ": "
            + "; ".join(f"{i.importer}:{i.line} imports {i.target}{' (in a function)' * i.in_function}" for i in links)
        )
    assert not problems, "import cycles:\n" + "\n".join(problems)


def _private_uses() -> list[tuple[str, str, str, int]]:
    """(importer, module, private name, line) for every private name taken from another module."""
    imports, bound = _imports()
    out = [(i.importer, i.target, i.name, i.line) for i in imports if _private(i.name) and i.target != i.importer]
    modules = _modules()
    for name, aliases in bound.items():
        for node in ast.walk(ast.parse(modules[name].read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and aliases[node.value.id] != name
                and _private(node.attr)
            ):
                out.append((name, aliases[node.value.id], node.attr, node.lineno))
    return out


def test_no_private_name_is_taken_from_another_module():
    found = [f"{a}:{line} takes {c} from {b}" for a, b, c, line in _private_uses()]
    assert not found, "private names used across modules:\n" + "\n".join(found)
