"""The package's layout stays readable: no import circles, no huge modules or functions,
and one home for exceptions.

Parsed with ``ast``, never imported: every import counts, wherever it is written (at the
top, inside a function, under ``if TYPE_CHECKING:``), because each one is a dependency a
reader has to follow. ``from pkg import name`` counts as importing ``pkg.name`` when that
is a module.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "i2vkit"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 70
ERRORS_MODULE = "i2vkit.errors"
EMULATOR = "i2vkit.emulator"  # a separate fal stand-in: it may keep its own exceptions


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package's modules one import statement of `module` names."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        package = module.split(".")
        if MODULES[module].name != "__init__.py":
            package.pop()  # relative imports start from the module's package
        base = package[: len(package) - node.level + 1] if node.level else []
        source = ".".join(base + ([node.module] if node.module else []))
        names = set()
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            names.add(submodule if submodule in MODULES else source)
    return {name for name in names if name in MODULES and name != module}


def _import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, tree in TREES.items():
        graph[module] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[module] |= _imported(module, node)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def _cycle_path(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete circle through the group's first module: a -> b -> ... -> a."""
    start = group[0]
    members = set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    return group


def test_no_import_circles():
    graph = _import_graph()
    circles = [
        f"  {len(group)} modules: {', '.join(group)}\n"
        f"    for example {' -> '.join(_cycle_path(group, graph))}"
        for group in _circles(graph)
    ]
    if circles:
        pytest.fail(
            "import circles in i2vkit/ (imports inside functions and under TYPE_CHECKING "
            "count): move the shared part into a lower module, or pass objects instead of "
            "importing the higher module\n" + "\n".join(circles),
            pytrace=False,
        )


def test_nothing_imports_the_cli():
    """The CLI is a plain layer over the library: the notebook and the exported script use
    the library and the request table, never `i2vkit.cli` (only `python -m i2vkit` runs it)."""
    graph = _import_graph()
    users = sorted(m for m, deps in graph.items() if "i2vkit.cli" in deps)
    assert users == ["i2vkit.__main__"], users


def test_modules_are_small():
    big = [
        f"  {path.relative_to(PACKAGE.parent)}: {lines} lines"
        for path in MODULES.values()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    if big:
        pytest.fail(
            f"modules over {MAX_MODULE_LINES} lines: split along meaning (a part with its own "
            "name goes into its own module)\n" + "\n".join(big),
            pytrace=False,
        )


def test_functions_are_short():
    long = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > MAX_FUNCTION_LINES:
                    where = MODULES[module].relative_to(PACKAGE.parent)
                    long.append(f"  {where}:{node.lineno} {node.name}: {lines} lines")
    if long:
        pytest.fail(
            f"functions over {MAX_FUNCTION_LINES} lines (decorators and docstrings included): "
            "split them into helpers named for what they do\n" + "\n".join(long),
            pytrace=False,
        )


def _classes() -> dict[str, list[tuple[str, ast.ClassDef]]]:
    """Every class of the package by name: [(module, definition)]."""
    found: dict[str, list[tuple[str, ast.ClassDef]]] = {}
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append((module, node))
    return found


def _base_names(node: ast.ClassDef) -> set[str]:
    """The bases' names as written (``errors.FalError`` counts as ``FalError``)."""
    names = set()
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.add(base.id)
        elif isinstance(base, ast.Attribute):
            names.add(base.attr)
    return names


def _exception_classes() -> list[tuple[str, ast.ClassDef]]:
    """Classes deriving from Exception (or any built-in exception), directly or through
    other classes of the package, judged by name."""
    classes = _classes()
    builtin = {
        name
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    known: dict[str, bool] = {}

    def is_exception(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in builtin:
            return True
        if name in seen or name not in classes:
            return False
        if name not in known:
            known[name] = any(
                is_exception(base, seen | {name})
                for _, node in classes[name]
                for base in _base_names(node)
            )
        return known[name]

    return [
        (module, node)
        for name, defs in classes.items()
        for module, node in defs
        if any(is_exception(base, frozenset({name})) for base in _base_names(node))
    ]


def _may_live_outside_errors(module: str, node: ast.ClassDef) -> bool:
    """Private classes (``_Name``) and the emulator's own internal exceptions."""
    return node.name.startswith("_") or module == EMULATOR or module.startswith(EMULATOR + ".")


def test_exceptions_live_in_errors_module():
    stray = [
        f"  {MODULES[module].relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"
        for module, node in _exception_classes()
        if module != ERRORS_MODULE and not _may_live_outside_errors(module, node)
    ]
    if stray:
        pytest.fail(
            "exception classes outside i2vkit/errors.py: move them there (with a docstring "
            "that says when each is raised and what to do), or make an internal one private "
            "(a leading _)\n" + "\n".join(sorted(stray)),
            pytrace=False,
        )
