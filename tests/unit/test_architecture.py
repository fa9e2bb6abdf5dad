"""The package layout holds: import-linter's contracts (pyproject.toml), no import cycle
anywhere in lstm_tune, a docstring that says each package's job, and a public API that is
listed."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import grimp

import lstm_tune
from tests.helpers import ROOT


def _cycles(graph: grimp.ImportGraph) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    imported = sorted(graph.find_modules_directly_imported_by(child))
                    work.append((child, iter(imported)))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_no_module_of_lstm_tune_is_in_an_import_cycle() -> None:
    graph = grimp.build_graph("lstm_tune")  # every import, lazy and TYPE_CHECKING ones too
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.d", imported="a.b")
    assert _cycles(graph) == [{"a.b", "a.c"}]


def test_every_package_says_its_job() -> None:
    packages = [lstm_tune.__name__]
    for module in pkgutil.walk_packages(lstm_tune.__path__, "lstm_tune."):
        if module.ispkg:
            packages.append(module.name)
    for name in packages:
        doc = importlib.import_module(name).__doc__
        assert doc and len(doc.strip()) > 40, f"{name} has no docstring saying its job"


def test_the_public_api_is_listed_and_importable() -> None:
    assert "load_model" in lstm_tune.__all__
    modules = [lstm_tune.__name__]
    modules += [m.name for m in pkgutil.walk_packages(lstm_tune.__path__, "lstm_tune.")]
    for name in modules:
        if name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        for exported in getattr(module, "__all__", ()):
            assert getattr(module, exported, None) is not None, f"{name}.{exported}"
