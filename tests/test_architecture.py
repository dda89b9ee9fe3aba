"""The layering of pixbox, checked from its source: the import graph has no cycle, the engine imports no
task, tasks do not import each other, and nothing dispatches with ``if task == "detect"`` chains.

The graph is built with :mod:`ast` from every ``import`` and ``from ... import`` statement of every
module under ``pixbox/``, at module level or inside functions: ``from a.b import c`` is an edge to
``a.b.c`` when that is a module, else to ``a.b``. A package importing its own submodules (its
``__init__`` re-exporting them) does not count.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pixbox"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _imports(name: str, path: Path) -> set[str]:
    """The pixbox modules ``name`` imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # `import pixbox.x.y` names module pixbox.x.y
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    if _is_package(name):  # a package importing its own submodules does not count
        found = {t for t in found if not t.startswith(name + ".")}
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_built_from_real_imports():
    """The graph sees module-level, nested and package imports (so the checks below can fail)."""
    assert "pixbox.engine.task" in GRAPH["pixbox.engine.runs"]
    assert "pixbox.engine.trainer" in GRAPH["pixbox.engine.task"]
    assert "pixbox.engine.checkpoint" in GRAPH["pixbox.tasks"] and "pixbox.tasks.detect" not in GRAPH["pixbox.tasks"]
    assert "pixbox.models" in GRAPH["pixbox.tasks.detect.train"]  # imported inside a method
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    detail = []
    for component in cycles:
        members = set(component)
        detail.append(", ".join(f"{m} -> {sorted(GRAPH[m] & members)}" for m in component))
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_the_engine_imports_no_task():
    bad = {name: sorted(t for t in targets if t == "pixbox.tasks" or t.startswith("pixbox.tasks."))
           for name, targets in GRAPH.items() if name == "pixbox.engine" or name.startswith("pixbox.engine.")}
    assert not any(bad.values()), {k: v for k, v in bad.items() if v}


def test_tasks_do_not_import_each_other():
    tasks = {name.split(".")[2] for name in MODULES if name.startswith("pixbox.tasks.") and _is_package(name)}
    assert {"detect", "classify", "segment"} <= tasks
    bad = []
    for name, targets in GRAPH.items():
        if not name.startswith("pixbox.tasks.") or name.split(".")[2] not in tasks:
            continue
        own = name.split(".")[2]
        bad += [(name, t) for t in targets
                if t.startswith("pixbox.tasks.") and t.split(".")[2] in tasks and t.split(".")[2] != own]
    assert not bad, bad


_SWITCH = re.compile(r"""\btask["')\]]*\s*(==|!=)\s*["']|["'](detect|classify|segment)["']\s*(==|!=)\s*\w*task\b""")


def test_no_task_switches_in_load_export_and_serve():
    """Dispatch on the task goes through pixbox.tasks.TASKS (or a table), never an if-chain."""
    files = [PACKAGE / "export.py", PACKAGE / "tasks" / "__init__.py", PACKAGE / "__init__.py",
             *sorted((PACKAGE / "serve").glob("*.py"))]
    hits = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if _SWITCH.search(code) and "===" not in code:  # the page's JavaScript draws results by kind
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "\n".join(hits)
    assert _SWITCH.search('if state.get("task") == "classify":') and _SWITCH.search("if task != 'detect':")


def test_engine_and_tasks_files_stay_small():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for folder in ("engine", "tasks") for p in (PACKAGE / folder).rglob("*.py")}
    assert not {k: v for k, v in sizes.items() if v > 450}


def test_checkpoint_module_is_light():
    """Checkpoint files (save, load, RNG state) import no model, data or metric code."""
    assert not {t for t in GRAPH["pixbox.engine.checkpoint"]
                if t.startswith(("pixbox.models", "pixbox.data", "pixbox.metrics", "pixbox.tasks"))}


def test_importing_pixbox_stays_light_and_the_task_names_are_reachable():
    import subprocess
    import sys

    code = ("import sys, pixbox; assert 'pixbox.tasks' not in sys.modules and 'pixbox.engine' not in sys.modules; "
            "import pixbox.tasks as t; assert pixbox.train_detector is t.train_detector; "
            "assert pixbox.DetectConfig is t.DetectConfig and pixbox.TASKS is t.TASKS")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
