"""No two modules of nnloom import each other, directly or around a ring (imports inside
functions count: a lazy import is still a dependency). A plan (pure numbers) sits below the
hardware that uses it; the engine builds from the plan, never the other way round."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("frontends", "rtl_gen", "sim", "flows", "boards")

# Rings other work in progress removes (issue #20 item 4: the GEMM compiler's split), each
# named by modules it contains. A ring that holds none of these pairs fails.
KNOWN: list[set[str]] = []


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the nnloom modules it imports (``from pkg import mod`` counts as ``pkg.mod``
    alone when that is a module)."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                # ``from pkg import mod`` needs pkg.mod, not what pkg/__init__ re-exports
                # (the package is initialised first for any submodule import anyway)
                targets = [
                    f"{target}.{a.name}" if f"{target}.{a.name}" in files else target
                    for a in node.names
                ]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in files and t != name}
        graph[name] = deps
    return graph


def rings(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_finder_sees_a_ring():
    assert rings({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert rings({"a": {"b"}, "b": set()}) == []


def test_no_module_ring():
    graph = import_graph()
    assert "rtl_gen.lutnet.artefact" in graph and graph["rtl_gen.lutnet.artefact"]
    new = [sorted(r) for r in rings(graph) if not any(known <= r for known in KNOWN)]
    assert not new, f"modules importing each other: {new}"
