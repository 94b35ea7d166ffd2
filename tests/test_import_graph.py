"""The import graph follows the layers of docs/architecture.md: imports point down, no circles."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# rank of each top-level room of corral: a module imports only its own room and lower ranks
RANK = {"domain": 0, "logs": 1, "providers": 1, "store": 1, "inventory": 2, "scheduling": 3, "runner": 4,
        "pools": 5, "ha": 6, "auth": 6, "metrics": 6, "config": 7, "runtime": 8, "api": 9, "bench": 10, "cli": 11}
ONLY_DOMAIN = {"providers", "store"}  # besides themselves


def graph() -> dict[str, set[str]]:
    modules = {".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (SRC / "corral").rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        out = edges.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):  # imports inside functions count too
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            out.update(t for t in targets if t in modules and t != name)
    return edges


def room(module: str) -> str:
    return module.split(".")[1] if "." in module else "corral"


EDGES = graph()


@pytest.mark.parametrize("module", sorted(EDGES))
def test_imports_point_down(module: str) -> None:
    mine = room(module)
    assert mine in RANK or mine == "corral", f"{module}: room {mine!r} has no place in the layers"
    for target in sorted(EDGES[module]):
        theirs = room(target)
        if theirs == mine or theirs == "corral":
            continue
        assert not (mine in ONLY_DOMAIN and theirs != "domain"), f"{module} imports {target}: only domain allowed"
        assert RANK[theirs] < RANK.get(mine, 99), f"{module} imports {target}, which is not below it"


def test_no_import_circles() -> None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(EDGES[node]):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package and its own modules
            assert state.get(nxt) != 1, "import circle: " + " -> ".join(path[path.index(nxt):] + [nxt])
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for module in sorted(EDGES):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("module", sorted(m for m in EDGES if room(m) in ("api", "cli", "metrics")))
def test_api_cli_and_metrics_use_pools_through_the_service(module: str) -> None:
    inside = sorted(t for t in EDGES[module]
                    if room(t) == "pools" and t not in ("corral.pools", "corral.pools.service"))
    assert not inside, f"{module} imports {inside}: api/, cli and metrics/ use pools/ through corral.pools.service"
