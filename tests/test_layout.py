"""The package's layout is its architecture: layers that import only downwards, and no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "restore"

# The README's Layout table, bottom layer first: a module may import its own layer and those before it.
LAYERS = [
    ["restore.io"],
    ["restore.resize", "restore.ensemble", "restore.hdr", "restore.metrics"],
    ["restore.noise"],
    ["restore.archs"],
    ["restore.modelfile", "restore.zoo"],
    ["restore.tiling", "restore.device"],
    ["restore.api", "restore.pipeline"],
    ["restore.engines"],
    ["restore.training"],
    ["restore.interop"],
    ["restore.evaluation", "restore.pictures"],
    ["restore.cli"],
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The restore modules `path` imports, at the top or inside functions (`from restore import x` counted as restore.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("restore"):
            if node.module == "restore":
                found |= {f"restore.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("restore.")}
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def layer_of(module: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) for top in layer if module == top or module.startswith(top + ".")), None)


def test_no_module_imports_one_that_imports_it_back():
    edges = graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            assert state.get(nxt) != "open", "import cycle: " + " -> ".join([*path[path.index(nxt) :], nxt])
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])


def test_every_module_imports_only_its_own_layer_and_those_below():
    edges = graph()
    unplaced = sorted(m for m in edges if layer_of(m) is None and m not in ("restore", "restore.__main__"))
    assert not unplaced, f"modules outside the README's layers: {unplaced}"
    upward = [
        f"{module} -> {imported}"
        for module, imported_set in edges.items()
        if (own := layer_of(module)) is not None
        for imported in imported_set
        if (layer := layer_of(imported)) is not None and layer > own
    ]
    assert not upward, "imports against the layering: " + ", ".join(sorted(upward))
