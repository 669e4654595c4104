"""The package's layers point one way, read from the imports of every module (lazy ones included).

foundation ← services ← stages ← orchestration. A module may import its own package and any lower
layer; services may use other services (verify runs the sandbox) as long as no cycle forms; stages
never import each other. Each stage's ``cli.py`` only wires the stage into the command line, so it
belongs to the orchestration layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "branchmerge"
LAYERS = {
    "foundation": {"errors", "atomic", "console", "records", "reasoning", "contracts", "settings", "cards", "outdir", "network", "filehash", "chat",
                   "__init__"},
    "services": {"engines", "sandbox", "verify", "benchmarks", "tiny", "executors"},
    "stages": {"curate", "train", "merge", "evaluate", "report"},
    "orchestration": {"pipeline", "cli", "__main__"},
}
ORDER = ["foundation", "services", "stages", "orchestration"]


def _unit(module: str) -> str:
    """``branchmerge.curate.pipeline`` -> ``curate``; ``branchmerge.curate.cli`` -> ``cli`` (wiring)."""
    parts = module.split(".")[1:]
    if len(parts) >= 2 and parts[-1] == "cli":
        return "cli"
    return parts[0] if parts else "__init__"


def _layer(unit: str) -> str:
    for layer, units in LAYERS.items():
        if unit in units:
            return layer
    raise AssertionError(f"module unit {unit!r} belongs to no layer: add it to LAYERS in {__file__}")


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1 and parts[-2] != "branchmerge":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return {n for n in names if n == "branchmerge" or n.startswith("branchmerge.")}


def _edges() -> list[tuple[str, str, str, str]]:
    """(importing module, imported module, importing unit, imported unit) for every internal import."""
    modules = _modules()
    edges = set()
    for module, path in sorted(modules.items()):
        for target in sorted(_imports(path, module)):
            while target not in modules and "." in target:  # `from pkg import name` of a non-module name
                target = target.rsplit(".", 1)[0]
            if target == "branchmerge":
                continue
            edges.add((module, target, _unit(module), _unit(target)))
    return sorted(edges)


def test_every_import_points_down_or_within_its_package():
    wrong = []
    for module, target, src, dst in _edges():
        if src == dst:
            continue
        a, b = ORDER.index(_layer(src)), ORDER.index(_layer(dst))
        if b > a:
            wrong.append(f"{module} -> {target}: {_layer(src)} imports {_layer(dst)} (up)")
        elif a == b and _layer(src) == "stages":
            wrong.append(f"{module} -> {target}: stage {src} imports stage {dst} (sideways)")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_cycle_between_units():
    graph: dict[str, set[str]] = {}
    for _, _, src, dst in _edges():
        if src != dst:
            graph.setdefault(src, set()).add(dst)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(unit for unit in graph if unit in reach(unit))
    assert not cycles, f"units on an import cycle: {cycles}"


@pytest.mark.parametrize("unit", sorted(set().union(*LAYERS.values()) - {"__init__", "__main__", "cli"}))
def test_every_declared_unit_exists(unit):
    assert (ROOT / unit).is_dir() or (ROOT / f"{unit}.py").is_file(), f"{unit} is declared in LAYERS but missing"
