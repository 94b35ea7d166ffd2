"""No test reaches into a private name of corral: tests use what a module offers."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def private_names() -> set[str]:
    """Every ``_name`` corral defines: module functions and classes, methods, ``self._x`` attributes."""
    names = set()
    for path in (ROOT / "src" / "corral").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
            elif isinstance(node, ast.AnnAssign | ast.Assign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_tests_use_no_private_name_of_corral() -> None:
    private = private_names()
    found = []
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("corral"):
                found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name}"
                          for a in node.names if a.name in private]
            elif (isinstance(node, ast.Attribute) and node.attr in private
                  and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} reads .{node.attr}")
    assert not found, "tests reach into private names:\n" + "\n".join(sorted(found))
