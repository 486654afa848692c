"""The layers, read from the code: no import loop between modules, a contract that imports nothing above it, and
statistics that import nothing of the project but the contract.

The graph is computed with ``ast`` from every ``import`` in ``study/``, ``trainables/`` and ``analysis/``, at module
level and inside functions alike (a lazy import is still a dependency). Importing ``a.b.c`` also runs the packages
``a`` and ``a.b``, so those edges count too (except into the importer's own packages, which are already running).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGES = ("study", "trainables", "analysis")
CONTRACT = "study.contract"
# Every module of the contract; importing them all must pull in no torch and nothing of the project above it.
CONTRACT_MODULES = [
    "study.contract",
    "study.contract.spec",
    "study.contract.keys",
    "study.contract.tracking",
    "study.contract.runlog",
    "study.contract.store",
    "study.contract.experiment",
    "study.contract.memory_backend",
]
STATISTICS = "study.statistics"
# The statistics under both the trial and the report: numpy/scipy on the contract, no torch, no trial library.
STATISTICS_MODULES = [
    "study.statistics",
    "study.statistics.plateau",
    "study.statistics.onset",
    "study.statistics.stats",
    "study.statistics.neighbours",
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _imported(module: str, path: Path, known: set[str]) -> set[str]:
    """Every name ``module`` imports (absolute, relative resolved; ``from a import b`` is ``a.b`` when that is a
    module, else ``a``)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return out


def import_graph() -> dict[str, set[str]]:
    """{module: the project modules it imports, with the packages an import runs}."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges = set()
        for target in _imported(module, path, known):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                name = ".".join(parts[:i])
                own_package = module == name or module.startswith(name + ".")
                if name in known and (i == len(parts) or not own_package):
                    edges.add(name)
        graph[module] = edges - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
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
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_loop() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]] and cycles({"a": {"b"}, "b": set()}) == []


def test_the_source_packages_import_without_a_loop() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "study.contract.spec" in graph["study.plan"]  # the finder sees imports
    assert cycles(graph) == []


def test_the_contract_imports_nothing_above_it_in_its_code() -> None:
    """Statically (lazy imports included): the contract names no driver, trial-library or analysis module, nor
    torch; ``study/__init__`` and ``study/contract/__init__`` import nothing at all; mlflow is one module's."""
    graph = import_graph()
    project = {m for m in graph if m.split(".")[0] in PACKAGES}
    for module, path in _modules().items():
        imported = _imported(module, path, set(graph))
        if module == CONTRACT or module.startswith(CONTRACT + "."):
            above = {t for t in imported & project if t != "study" and not t.startswith(CONTRACT)}
            assert not above, f"{module} imports {sorted(above)} from above the contract"
            assert not {t for t in imported if t.split(".")[0] in ("torch", "torchvision", "ray")}, module
        if module in ("study", CONTRACT):
            assert imported <= {"__future__"}, f"{module}/__init__ imports {sorted(imported)}"
        if any(t.split(".")[0] == "mlflow" for t in imported):
            assert module == "study.contract.mlflow_backend", f"{module} imports mlflow"


def _loaded_after(code: str) -> dict[str, object]:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_importing_the_contract_loads_no_torch_and_nothing_above_it() -> None:
    loaded = _loaded_after(
        "import importlib, json, sys\n"
        f"for m in {CONTRACT_MODULES!r}: importlib.import_module(m)\n"
        "print(json.dumps({'modules': sorted(sys.modules)}))"
    )["modules"]
    assert "torch" not in loaded and "ray" not in loaded and "mlflow" not in loaded
    project = [m for m in loaded if m.split(".")[0] in PACKAGES or m == "bench"]
    assert [m for m in project if m != "study" and not m.startswith(CONTRACT)] == []


def test_the_cli_refuses_a_wrong_argument_before_loading_torch() -> None:
    """``python -m study validate`` with a missing argument or a file that is not a spec answers without the trial
    library (it used to import torch first: about 12 s on a cold machine)."""
    loaded = _loaded_after(
        "import json, sys\n"
        "from study.cli import main\n"
        "try:\n    main(['validate'])\nexcept SystemExit as e:\n    code = e.code\n"
        "missing = main(['validate', 'no-such-spec.yaml'])\n"
        "print(json.dumps({'codes': [code, missing], 'torch': 'torch' in sys.modules}))"
    )
    assert loaded == {"codes": [2, 2], "torch": False}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_statistics_import_only_the_contract_in_their_code() -> None:
    """Statically (lazy imports included): ``study.statistics`` names nothing of the project but the contract and
    itself, nor torch; its ``__init__`` imports nothing. Every module that decides (the stoppers, the scores, the
    report) finds the statistics there, and nowhere else."""
    graph = import_graph()
    modules = _modules()
    assert set(STATISTICS_MODULES) == {m for m in modules if _within(m, STATISTICS)}
    project = {m for m in graph if m.split(".")[0] in PACKAGES}
    for module in STATISTICS_MODULES:
        imported = _imported(module, modules[module], set(graph))
        above = {t for t in imported & project if t != "study" and not (_within(t, CONTRACT) or _within(t, STATISTICS))}
        assert not above, f"{module} imports {sorted(above)}: the statistics sit on the contract only"
        assert not {t for t in imported if t.split(".")[0] in ("torch", "torchvision", "ray", "mlflow", "pandas")}
    assert _imported(STATISTICS, modules[STATISTICS], set(graph)) <= {"__future__"}
    users = {
        m for m, edges in graph.items()
        if not _within(m, STATISTICS) and any(_within(e, STATISTICS) for e in edges)
    }
    assert {"trainables.stopping", "trainables.scores", "analysis.convergence"} <= users


def test_importing_the_statistics_loads_no_torch_and_nothing_above_the_contract() -> None:
    loaded = _loaded_after(
        "import importlib, json, sys\n"
        f"for m in {STATISTICS_MODULES!r}: importlib.import_module(m)\n"
        "print(json.dumps({'modules': sorted(sys.modules)}))"
    )["modules"]
    assert "torch" not in loaded and "ray" not in loaded and "mlflow" not in loaded and "pandas" not in loaded
    project = [m for m in loaded if m.split(".")[0] in PACKAGES or m == "bench"]
    assert [m for m in project if m != "study" and not (_within(m, CONTRACT) or _within(m, STATISTICS))] == []
