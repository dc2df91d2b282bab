"""No import loops: between modules none at all; between packages none (issue 26 found them between the pipeline
and inference, the store and metrics, the store and the network), nor between the shared outputs and a pipeline.

Imports at a module's top level count; imports inside functions (a pipeline's heavy work, loaded when a job
runs) and under TYPE_CHECKING (names for annotations) do not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dicom_node"
def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def existing_module(name: str) -> str | None:
    """The dicom_node module an import names (the longest prefix that is a module or package), or None."""
    parts = name.split(".")
    for n in range(len(parts), 1, -1):
        base = ROOT.joinpath(*parts[:n])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return ".".join(parts[:n])
    return None


def top_level_imports(path: Path) -> Iterator[str]:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def module_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = module_name(path)
        targets = {existing_module(name) for name in top_level_imports(path) if name.startswith("dicom_node.")}
        graph[source] = {t for t in targets if t and t != source and t != "dicom_node"}
    return graph


def package_of(module: str) -> str:
    """The unit of the package rules: a sub-package (each pipeline its own; the registry is the composition
    root that lists them), or a top-level module."""
    parts = module.split(".")[1:] or ["dicom_node"]
    if parts[:2] == ["pipelines", "registry"]:
        return "pipelines.registry"
    if parts[0] == "pipelines" and len(parts) > 2:
        return f"pipelines.{parts[1]}"
    return parts[0]


def test_no_module_imports_itself_through_others() -> None:
    graph = module_graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import loop: " + " -> ".join([*path[path.index(module):], module]))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_no_two_packages_import_each_other() -> None:
    edges = {(package_of(a), package_of(b)) for a, targets in module_graph().items() for b in targets}
    loops = {frozenset(edge) for edge in edges if edge[0] != edge[1] and edge[::-1] in edges}
    assert not loops, sorted(tuple(sorted(loop)) for loop in loops)


def test_inference_and_the_shared_outputs_know_no_pipeline() -> None:
    for module, targets in module_graph().items():
        if package_of(module) in ("inference", "output", "metrics", "pipeline"):
            assert not {t for t in targets if t.startswith("dicom_node.pipelines")}, module
