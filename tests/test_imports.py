"""The library's modules import each other without a cycle (function-level imports count too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"


def module_name(path: Path) -> str:
    parts = path.relative_to(LIB).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The library modules `path` imports anywhere in its body (not its parent packages: those always run first)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            source = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            targets = [source] + [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target in known}
    parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return found - parents - {name}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(LIB.rglob("*.py"))
    known = {module_name(path) for path in paths}
    return {module_name(path): imports_of(path, known) for path in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when there is none."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def floors(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each module's floor in an acyclic graph: 1 when it imports none of the graph's modules, else one above
    the highest module it imports."""
    memo: dict[str, int] = {}

    def floor(node: str) -> int:
        if node not in memo:
            memo[node] = 1 + max((floor(t) for t in graph[node] if t in graph), default=0)
        return memo[node]

    return {node: floor(node) for node in graph}


def package_graph(package: str) -> dict[str, set[str]]:
    """The import graph among one package's modules (its face, `__init__`, left out: it only re-exports)."""
    graph = import_graph()
    inside = {name for name in graph if name.startswith(package + ".")}
    return {name: graph[name] & inside for name in inside}


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "multiverse_etl.storage" in graph["multiverse_etl.s3_storage"]
    assert (
        "multiverse_etl.extract" in graph["multiverse_etl.entrypoints"]
        or "multiverse_etl.extract.args" in graph["multiverse_etl.entrypoints"]
    )  # imported inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_in_the_library():
    assert find_cycle(import_graph()) == []


def test_an_s3_root_opens_as_s3_with_only_the_storage_module_imported():
    """s3_storage registers itself through the package: no caller has to import it for open_storage to know s3://."""
    code = (
        "from multiverse_etl.config import S3Config; from multiverse_etl.storage import open_storage;"
        "print(type(open_storage('s3://bucket/lake', S3Config(endpoint_url='http://127.0.0.1:9'))).__name__,"
        "type(open_storage('/tmp/lake')).__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["S3Storage", "LocalStorage"], done.stderr


def test_floors_count_the_longest_import_chain():
    assert floors({"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": {"x"}}) == {"a": 3, "b": 2, "c": 1, "d": 1}


def test_the_transform_package_is_at_most_eight_floors_deep():
    """Results sit at the bottom (results.py), pure steps below the I/O, run.py on top: a chain of imports
    longer than 8 modules means a step reaches up for something that belongs lower (issue 23, item 8)."""
    levels = floors(package_graph("multiverse_etl.transform"))
    assert levels["multiverse_etl.transform.run"] == max(levels.values())
    assert max(levels.values()) <= 8, sorted(levels.items(), key=lambda item: -item[1])
    assert levels["multiverse_etl.transform.results"] <= 2
