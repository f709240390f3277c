"""Every public function and method of nnloom has type hints: each parameter (``self`` and
``cls`` aside, ``*args``/``**kwargs`` included) and the return (``__init__`` aside).

Public: a name without a leading underscore, plus ``__init__``, at module level or in a
class whose name has none (also under a module-level ``if``/``try``). ``elaborate(self,
platform)`` keeps Amaranth's own unannotated form.
"""

import ast
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("boards", "flows", "frontends", "rtl_gen", "sim")

# Glob patterns of modules allowed to lack hints for a while (issue #20 item 7 emptied it):
# a module other work is rewriting may wait here, and leaves the list when annotated.
PENDING: tuple[str, ...] = ()

# Amaranth's Elaboratable.elaborate(self, platform): left as Amaranth writes it.
EXEMPT = {"elaborate"}


def _public(name: str) -> bool:
    return not name.startswith("_") or name == "__init__"


def missing_hints(source: str, filename: str = "<source>") -> list[str]:
    """``line name: what lacks a hint`` for every public function of ``source``."""
    found = []

    def check(fn: ast.FunctionDef | ast.AsyncFunctionDef, owner: str) -> None:
        args = fn.args
        params = [a for a in args.posonlyargs + args.args if a.arg not in ("self", "cls")]
        params += args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a is not None]
        lacking = [a.arg for a in params if a.annotation is None]
        if fn.returns is None and fn.name != "__init__":
            lacking.append("return")
        if lacking:
            found.append(f"{fn.lineno} {owner}{fn.name}: {', '.join(lacking)}")

    def visit(node: ast.AST, owner: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                if _public(child.name):
                    visit(child, f"{owner}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if _public(child.name) and child.name not in EXEMPT:
                    check(child, owner)
            elif isinstance(child, (ast.If, ast.Try, ast.ExceptHandler)) and not owner:
                visit(child, owner)

    visit(ast.parse(source, filename), "")
    return found


def _pending(relative: str) -> bool:
    return any(fnmatch(relative, pattern) for pattern in PENDING)


def test_the_finder_sees_what_lacks_a_hint():
    source = """
def f(a: int, b, *c, d: str = "", **e) -> None: ...
def g(x: int): ...
def _private(y): ...
class C:
    def __init__(self, n): ...
    def m(self, k: int) -> int: ...
    def elaborate(self, platform): ...
    @property
    def p(self): ...
class _Hidden:
    def m(self, z): ...
"""
    assert missing_hints(source) == [
        "2 f: b, c, e",
        "3 g: return",
        "6 C.__init__: n",
        "10 C.p: return",
    ]
    assert missing_hints("def ok(a: int, *b: str, **c: float) -> bool: ...") == []


def test_every_public_function_has_type_hints():
    missing, checked = [], 0
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if _pending(relative):
                continue
            checked += 1
            missing += [f"{relative}:{m}" for m in missing_hints(path.read_text(), relative)]
    assert checked > 50, "the walk found too few modules: is ROOT right?"
    assert not missing, "public functions without type hints:\n" + "\n".join(missing)
