"""The shape of the code, checked: packages by stage that import only downward, at most 6 floors inside a
package and no import loops, no private name imported from another module, no module is over
400 lines, no function over 60, deployment loads no renderer or PKI, and every fact kind and event type the
code names is one of the vocabulary's."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

from logstack.classify.kinds import EventType, FactKind

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "logstack"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _runtime_imports(tree: ast.AST) -> set[str]:
    skipped = set()
    for node in ast.walk(tree):  # imports for type checkers only do not stack modules at run time
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for n in ast.walk(node)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {dep for dep in _runtime_imports(ast.parse(path.read_text())) if dep in modules and dep != name}
        for name, path in modules.items()
    }


def _longest_chain(graph: dict[str, set[str]]) -> tuple[str, ...]:
    @functools.cache
    def chain(module: str, stack: tuple[str, ...] = ()) -> tuple[str, ...]:
        assert module not in stack, f"import loop: {' -> '.join((*stack, module))}"
        below = [chain(dep, (*stack, module)) for dep in graph[module]]
        return (module, *max(below, key=len, default=()))

    return max((chain(m) for m in graph), key=len)


# The stages, lowest first: a package may import only itself and the packages before it.
PACKAGE_ORDER = (
    "base",
    "classify",
    "journal",
    "columnar",
    "site",
    "integrity",
    "pki",
    "connection",
    "render",
    "store",
    "deploy",
    "provision",
    "analyze",
    "alerts",
    "evidence",
    "commands",
    "cli",
)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "base"  # `logstack` itself holds only the version


def test_no_import_loops_and_at_most_six_floors_inside_a_package():
    graph = _graph()
    _longest_chain(graph)  # asserts there is no loop
    for package in PACKAGE_ORDER:
        inside = {m: {d for d in deps if _package(d) == package} for m, deps in graph.items() if _package(m) == package}
        if inside:
            longest = _longest_chain(inside)
            assert len(longest) <= 6, " -> ".join(longest)


def test_every_module_is_in_a_package_of_the_order():
    assert {_package(m) for m in _modules()} <= set(PACKAGE_ORDER) | {"__main__"}


def test_packages_depend_only_downward():
    rank = {name: i for i, name in enumerate(PACKAGE_ORDER)}
    rank["__main__"] = len(PACKAGE_ORDER)
    upward = sorted(
        f"{module} imports {dep}"
        for module, deps in _graph().items()
        for dep in deps
        if rank[_package(dep)] > rank[_package(module)]
    )
    assert upward == []


def test_no_module_imports_another_modules_private_name():
    found = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("logstack"):
                found += [
                    f"{name}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert found == []


def test_every_package_says_what_it_holds():
    for package in PACKAGE_ORDER[:-1]:
        doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text()))
        assert doc and (len(doc.splitlines()) == 1 or doc.splitlines()[1] == ""), package  # a one-line summary


def test_no_module_over_400_lines():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


def _is_data_table(node: ast.FunctionDef) -> bool:
    # a function that only returns one literal (a table) may be as long as its data
    body = [n for n in node.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    return len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Dict | ast.List)


def test_no_function_over_60_lines():
    long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_data_table(node):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{name}.{node.name}: {lines}")
    assert long == []


def test_deployment_loads_no_renderer_no_pki():
    code = (
        "import sys, logstack.deploy.plan; assert not {'jinja2', 'cryptography', 'paramiko'} & set(sys.modules), "
        "sorted({'jinja2', 'cryptography', 'paramiko'} & set(sys.modules)); "
        "import logstack.deploy.apply; bad = {'jinja2', 'logstack.render.site_files', 'logstack.pki'} "
        "& set(sys.modules); "
        "assert not bad, sorted(bad)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _string_args(path: Path, call: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == call and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
    return found


def test_every_fact_kind_the_classifier_states_is_a_fact_kind():
    from logstack.classify.messages import load_table

    stated = _string_args(PACKAGE / "classify/classifier.py", "Fact") | {
        kind for row in load_table() for kind in (row.kind, row.kind_preauth) if kind
    }
    assert len(stated) > 20
    assert stated <= {k.value for k in FactKind}


def test_every_event_type_is_an_event_type():
    from logstack.analyze.event import TYPE_RULES

    assert {rule.type for rule in TYPE_RULES} <= set(EventType)
    typed = set()
    for path in (PACKAGE / "analyze/event.py", PACKAGE / "analyze/grouping.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "type" and isinstance(node.value, ast.Constant):
                typed.add(node.value.value)
    assert typed <= {t.value for t in EventType}


def test_the_layout_page_is_made_from_the_docstrings():
    from tests.layout import layout, readme_with

    readme = (ROOT / "docs" / "layout.md").read_text()
    assert readme_with(layout(PACKAGE_ORDER), readme) == readme, "run `python3 -m tests.layout`"
