"""The import graph of sweep/, trainers/ and analysis/, read with ast (nothing is imported).

* no cycles;
* nothing under trainers/ or analysis/ imports sweep/ (and analysis/ imports no trainers);
* only the Ray layer (sweep/tuning/) imports ray;
* no stage imports a later one: config < data < store < tuning < results < the run
  (pipeline, run, resume, bench); errors, rules, device, fs, console and the family registry
  sit below all of them and import no stage;
* imports sit at the top of files, except the heavy optional ones in HEAVY.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("sweep", "trainers", "analysis")
SHARED = ("sweep", "sweep.errors", "sweep.rules", "sweep.device", "sweep.fs", "sweep.console",
          "sweep.families")
STAGES = ("sweep.config", "sweep.data", "sweep.store", "sweep.tuning", "sweep.results")
TOP = ("sweep.pipeline", "sweep.run", "sweep.resume", "sweep.bench")
# imported inside a function: slow to import and needed by one path only (the CLI loads the
# run and the resume, i.e. Ray and the report, once its input is checked)
HEAVY = {"timm", "sklearn.datasets", "huggingface_hub", "sweep.bench", "sweep.pipeline",
         "sweep.resume"}


def _modules() -> dict[str, str]:
    """module name -> file path, for every .py file of the three packages."""
    out = {}
    for pkg in PACKAGES:
        for d, _, files in os.walk(os.path.join(ROOT, pkg)):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(d, f), ROOT)[:-3].split(os.sep)
                    out[".".join(rel[:-1] if rel[-1] == "__init__" else rel)] = os.path.join(d, f)
    return out


MODULES = _modules()


def _imports(name: str, path: str):
    """(imported module name, inside a function?) for every import statement of a module."""
    tree = ast.parse(open(path).read())
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef,
                                                               ast.AsyncFunctionDef))
              for n in ast.walk(f) if n is not f}
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                       # relative: from the package upwards
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # `from a.b import c` imports the module a.b.c when there is one, else from a.b
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        for t in targets:
            yield t, id(node) in nested


def _ours(target: str) -> str | None:
    """The longest module of ours that `target` names (a.b.c -> a.b if a.b.c is not one)."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in MODULES:
            return ".".join(parts[:i])
    return None


GRAPH = {m: {t for t, _ in _imports(m, p)} for m, p in MODULES.items()}
EDGES = {m: {o for t in ts if (o := _ours(t)) and o != m} for m, ts in GRAPH.items()}


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _rank(module: str) -> int:
    """-1 below the flow, 0..4 the stages, 5 the run; None outside sweep."""
    if module in SHARED or _within(module, ("sweep.families",)):
        return -1
    for i, stage in enumerate(STAGES):
        if _within(module, (stage,)):
            return i
    return 5 if _within(module, TOP) else None


def test_the_graph_is_read():
    assert {"sweep.tuning.tuner", "sweep.families.gater", "analysis.report"} <= set(MODULES)
    assert "sweep.families.family" in EDGES["sweep.families.gater"]
    assert "sweep.store.build" in EDGES["sweep.tuning.remote"]


def test_no_import_cycles():
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(EDGES[m]):
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"
    for m in sorted(EDGES):
        if m not in state:
            visit(m)
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("pkg, banned", [("trainers", ("sweep", "analysis")),
                                         ("analysis", ("sweep", "trainers", "torch", "ray"))])
def test_lower_packages_do_not_import_upwards(pkg, banned):
    bad = [(m, t) for m, ts in GRAPH.items() if _within(m, (pkg,))
           for t in ts if _within(t, banned)]
    assert not bad, bad


def test_only_the_ray_layer_imports_ray():
    bad = [(m, t) for m, ts in GRAPH.items() for t in ts
           if _within(t, ("ray",)) and not _within(m, ("sweep.tuning",))]
    assert not bad, bad


def test_no_stage_imports_a_later_one():
    bad = [(m, n) for m, ns in EDGES.items() if _rank(m) is not None for n in ns
           if _rank(n) is not None and _rank(n) > _rank(m)]
    assert not bad, bad


def test_imports_at_the_top_except_heavy_optional_ones():
    bad = [(m, t) for m, p in MODULES.items() for t, inside in _imports(m, p)
           if inside and not _within(t, HEAVY)]
    assert not bad, bad
