"""The package's layout (docs/design.md, "Where things live"): each folder holds one kind of thing
and imports only go down, so a reader knows where a new LP, search or derivative goes and what
it may use. Read from the source with ``ast``: function-local imports count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ganinvert"

#: lowest first; a module may import from its own layer and the layers below it, never above
LAYERS = (
    {"errors", "tolerances", "streams", "result", "budget"},
    {"operators", "activations"},
    {"chain", "converters", "functional"},
    {"lifting", "linearize", "radius", "backward", "adapters", "blackbox", "nets"},  # the network: what every solver walks
    {"lp"},  # LP formulations and the solvers behind them
    {"search"},  # local searches from starting points (LM, pattern descent, kicks, L-BFGS)
    {"gradients"},  # differentiation through the answer
    {"inverters"},  # strategies that combine the above
    {"defaults", "observations", "conditions", "certificates", "api", "module", "report", "metrics", "comparison", "app", "models", "__init__"},
)
RANK = {name: r for r, names in enumerate(LAYERS) for name in names}
MAX_FUNCTION_LINES = 80


def _unit(module: str) -> str:
    """``ganinvert.lp.ipm`` -> ``lp``: the top-level module or folder of the package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").exists()


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        package = parts[:-1]  # what a relative import is relative to
        yield path, ".".join(parts), package, ast.parse(path.read_text())


def _imports(package: tuple[str, ...], tree: ast.AST):
    """``(node, target module, inside a function)`` for every import of a ganinvert module."""
    local = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1])
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("ganinvert"):
                # "from .. import x": x is a module of the package, or a name of its __init__
                names = [target] if node.module else [
                    f"{target}.{a.name}" if _is_module(f"{target}.{a.name}") else target for a in node.names]
                yield from ((node, t, id(node) in local) for t in names)
        elif isinstance(node, ast.Import):
            yield from ((node, a.name, id(node) in local) for a in node.names if a.name.startswith("ganinvert"))


def test_every_module_of_the_package_has_a_layer():
    units = {_unit(module) for _, module, _, _ in _sources()}
    assert units <= set(RANK), f"place these in LAYERS (and in docs/design.md): {sorted(units - set(RANK))}"


def test_imports_only_go_down():
    upward = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {target}"
              for path, module, package, tree in _sources()
              for node, target, _ in _imports(package, tree)
              if RANK[_unit(target)] > RANK[_unit(module)]]
    assert not upward, "\n".join(upward)


def test_no_lp_module_imports_an_inverter_a_search_or_a_derivative():
    bad = [f"{path.name} imports {target}" for path, module, package, tree in _sources()
           if _unit(module) == "lp" for _, target, _ in _imports(package, tree)
           if _unit(target) in ("inverters", "search", "gradients")]
    assert not bad


def test_no_function_hides_an_import_of_the_package():
    hidden = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {target} inside a function"
              for path, _, package, tree in _sources()
              for node, target, inside in _imports(package, tree) if inside]
    assert not hidden, "\n".join(hidden)


def _body_lines(fn: ast.FunctionDef) -> int:
    first = fn.body[0]
    doc = (first.end_lineno - first.lineno + 1
           if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
           else 0)
    return fn.end_lineno - fn.lineno + 1 - doc


def test_no_function_is_longer_than_80_lines_docstrings_aside():
    long = [f"{path.relative_to(PACKAGE.parent)}:{fn.lineno} {fn.name} ({_body_lines(fn)} lines)"
            for path, _, _, tree in _sources() for fn in ast.walk(tree)
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(fn) > MAX_FUNCTION_LINES]
    assert not long, "\n".join(long)


@pytest.mark.parametrize("source, found, inside", [
    ("from ..inverters.base import RawSolution\n", ["inverters"], [False]),
    ("def f():\n    from ..inverters.backward import BackwardPass\n", ["inverters"], [True]),
    ("from .problem import LayerProblem\nimport cvxpy\n", ["lp"], [False]),
    ("from .. import __version__, search\n", ["__init__", "search"], [False, False]),
])
def test_the_checks_see_relative_and_function_local_imports(source, found, inside):
    # the checks above read what they claim to: a relative import from ganinvert/lp/x.py of an
    # inverter is upward, also when a function hides it; a third-party import is not the package's
    got = list(_imports(("ganinvert", "lp"), ast.parse(source)))
    assert [_unit(t) for _, t, _ in got] == found and [i for _, _, i in got] == inside
