"""The package's imports form layers (docs/architecture.md, "Layers"): no import circle,
imports inside functions included; no import from a lower floor to a higher one; and an
in-package import deferred into a function says why (only to keep something heavy lazy)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "w2v2cli"

#: Lowest floor first; a module's floor is that of its longest listed prefix. A module may
#: import from its own floor and the floors below, never from above.
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("records, options, errors, files", ("errors", "records", "options", "fsutil", "cores")),
    (
        "audio, inputs, chunks and outputs",
        ("audio", "discovery", "chunking", "segmentation", "output", "scale"),
    ),
    ("the LM side", ("lm",)),
    ("models and decoders", ("models", "decoding")),
    ("running the model; forced alignment", ("inference", "alignment")),
    ("pipelines and evaluation", ("pipeline", "evaluation")),
    ("drivers", ("run", "scale.ray_data", "scale.ray_stages", "scale.ray_plan")),
    ("command line", ("cli", "__main__")),
    ("the package's API", ("",)),
]


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    in_function: bool
    deferred_comment: bool


def modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted names (relative to the package, "" for the package itself) → (file, is_package)."""
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def imports(root: Path) -> list[Import]:
    """Every import of one of the package's modules, at module level or in a function, with
    the parent packages it runs (``from .a.b import c`` runs ``a`` and ``a.b``)."""
    known = modules(root)
    found: list[Import] = []
    for module, (path, is_package) in known.items():
        found += _module_imports(root.name, known, module, path, is_package)
    return found


def _module_imports(
    name: str, known: dict[str, tuple[Path, bool]], module: str, path: Path, is_package: bool
) -> list[Import]:
    lines = path.read_text(encoding="utf-8").splitlines()
    here = module.split(".") if module else []
    base = here if is_package else here[:-1]
    found: list[Import] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        out = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                origin = _join(*up, node.module or "")
            elif node.module and (node.module + ".").startswith(name + "."):
                origin = node.module[len(name) + 1 :] if node.module != name else ""
            else:
                return []
            for alias in node.names:
                sub = _join(origin, alias.name)
                out.append(sub if sub in known else origin)
        else:
            for alias in node.names:
                if (alias.name + ".").startswith(name + "."):
                    out.append(alias.name[len(name) + 1 :] if alias.name != name else "")
        return out

    def runs(target: str) -> list[str]:
        """``target`` and the parent packages importing it runs, less those of ``module``
        (already running when it runs)."""
        parts = target.split(".") if target else []
        chain = [".".join(parts[:i]) for i in range(1, len(parts))] + [target]
        mine = {".".join(here[:i]) for i in range(len(here))}
        return [m for m in chain if m in known and m != module and m not in mine]

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import | ast.ImportFrom):
                text = " ".join(lines[child.lineno - 2 : child.end_lineno])
                for target in targets(child):
                    for ran in runs(target):
                        found.append(Import(module, ran, child.lineno, inner, "deferred" in text))
            visit(child, inner)

    visit(ast.parse("\n".join(lines)), False)
    return found


def floor_of(module: str) -> int:
    best, floor = -1, None
    for index, (_, prefixes) in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".") or prefix == "") and len(
                prefix
            ) > best:
                best, floor = len(prefix), index
    assert floor is not None
    return floor


def circles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def upward(edges: list[Import]) -> list[str]:
    return [
        f"{e.source} (floor {floor_of(e.source)}: {FLOORS[floor_of(e.source)][0]}) imports "
        f"{e.target} (floor {floor_of(e.target)}: {FLOORS[floor_of(e.target)][0]}), "
        f"line {e.line}"
        for e in edges
        if floor_of(e.target) > floor_of(e.source)
    ]


def undeclared_deferrals(edges: list[Import]) -> list[str]:
    return [
        f"{e.source} line {e.line} imports {e.target} inside a function without saying why "
        "(# deferred: ...)"
        for e in edges
        if e.in_function and not e.deferred_comment
    ]


EDGES = imports(PACKAGE)


def test_the_walk_sees_the_package():
    sources = {e.source for e in EDGES}
    assert {"cli.transcribe", "run", "models.loading", "inference.engine"} <= sources
    assert any(e.in_function for e in EDGES)  # the deferred torch imports


def test_no_import_circle():
    assert circles(EDGES) == []


def test_no_import_from_a_higher_floor():
    assert upward(EDGES) == []


def test_every_module_has_a_floor_that_is_not_only_the_package_default():
    loose = [m for m in modules(PACKAGE) if m and floor_of(m) == len(FLOORS) - 1]
    assert loose == [], "give these modules a floor in FLOORS"


def test_imports_inside_functions_say_why():
    assert undeclared_deferrals(EDGES) == []


def documented_modules(page: Path) -> set[str]:
    """The modules the architecture page's tree lists, as paths under the package."""
    text = page.read_text(encoding="utf-8")
    tree = text[text.index("```\nw2v2cli/\n") :]
    tree = tree[: tree.index("\n```", 4)]
    listed, package = set(), ""
    for line in tree.splitlines()[1:]:
        if match := re.match(r"^  (\w+)/\s*$", line):
            package = match.group(1) + "/"
        elif match := re.match(r"^  (\w+\.py)\b", line):
            listed.add(match.group(1))
        elif match := re.match(r"^    (\w+\.py)\b", line):
            listed.add(package + match.group(1))
    return listed


def test_the_architecture_page_lists_every_module():
    page = PACKAGE.parent / "docs" / "architecture.md"
    present = {
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" or p.parent in (PACKAGE, PACKAGE / "cli")
    }
    listed = documented_modules(page)
    assert sorted(present - listed) == [], "modules missing from docs/architecture.md"
    assert sorted(listed - present) == [], "docs/architecture.md lists modules that are gone"


@pytest.fixture
def knot(tmp_path: Path) -> Path:
    """A small package with a circle through a function-level import, an upward import and
    an unexplained deferred import: the checks above must see all three."""
    root = tmp_path / "w2v2cli"
    (root / "models").mkdir(parents=True)
    (root / "cli").mkdir()
    (root / "__init__.py").write_text("")
    (root / "errors.py").write_text("from .cli import main\n")  # upward
    (root / "cli" / "__init__.py").write_text("def main():\n    pass\n")
    (root / "models" / "__init__.py").write_text("from .a import x\n")
    (root / "models" / "a.py").write_text("from .b import y\nx = 1\n")
    (root / "models" / "b.py").write_text(
        "y = 2\n\ndef f():\n    from .a import x\n    return x\n"  # the circle, deferred
    )
    return root


def test_the_checks_find_a_circle_an_upward_import_and_an_unexplained_deferral(knot: Path):
    edges = imports(knot)
    assert circles(edges) == [["models.a", "models.b"]]
    assert len(upward(edges)) == 1 and upward(edges)[0].startswith("errors (floor 0")
    assert [m.split(" line")[0] for m in undeclared_deferrals(edges)] == ["models.b"]
