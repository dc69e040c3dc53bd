"""Design metrics of the code base, measured the same way before and after a refactor (issue 13's table).

- lines over 120 characters (every .py file of the packages, tests and benchmarks);
- library functions over 60 lines (vlmr1, curation, training, flows; AST, decorators excluded);
- summary shapes: distinct return types of the stage entry points (one per stage is six-plus shapes);
- places a sampling knob is spelled: class fields and function parameters named temperature, top_p, top_k,
  max_new_tokens (AST), counted per knob;
- the faces (issue 31): the largest CLI module's lines; the largest fan-out (first-party modules one module
  imports, function-level imports included); stage commands whose command prints the stage's ``StageReport``;
  places an exit code is decided (functions that call ``typer.Exit``/``SystemExit`` with a code); how often each
  default (template, threshold, partition size) is written as a literal, and a reward dialect's name as a string
  literal; import circles (function-level imports included); lines of test kit shipped in the product packages
  that no product module uses; README lines;
- with ``--flow``: times one demo run of ``curate-and-train`` enters the catalog module (``catalog.connect``)
  and loads a recipe (``load_recipe``), counted by wrapping both before the run.

Usage: ``python benchmarks/design_metrics.py [--flow]``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vlmr1", "curation", "training", "flows")
KNOBS = ("temperature", "top_p", "top_k", "max_new_tokens")
# (module, function) of each stage's entry point; the first found of each row counts
STAGES = [
    [("curation.ingest.store", "ingest_file")],
    [("curation.quality.apply", "evaluate"), ("curation.quality.apply", "evaluate_recipe")],
    [("curation.difficulty.scoring", "score_recipe"), ("curation.difficulty", "score_recipe")],  # after, before
    [("curation.selection.select", "select"), ("curation.selection", "select")],
    [("curation.shards.write", "write_shards"), ("curation.shards", "write_shards")],
    [("training.launch", "run")],
    [("training.evaluate", "evaluate"), ("training.evaluate", "evaluate_model")],
]


def _files(dirs) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if ".venv" not in p.parts)


def long_lines(limit: int = 120) -> tuple[int, int]:
    total = over = 0
    for p in _files(PACKAGES + ("tests", "benchmarks")):
        for line in p.read_text().splitlines():
            total += 1
            over += len(line) > limit
    return over, total


def long_functions(limit: int = 60) -> list[str]:
    out = []
    for p in _files(PACKAGES):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{p.relative_to(ROOT)}:{node.name} ({n})")
    return out


def summary_shapes() -> dict[str, str]:
    shapes = {}
    for candidates in STAGES:
        for module, name in candidates:
            try:
                fn = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                continue
            shapes[f"{module}.{name}"] = str(inspect.signature(fn).return_annotation)
            break
    return shapes


def knob_spellings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {k: [] for k in KNOBS}
    for p in _files(PACKAGES):
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if (
                        isinstance(item, ast.AnnAssign)
                        and isinstance(item.target, ast.Name)
                        and item.target.id in found
                    ):
                        found[item.target.id].append(f"{p.relative_to(ROOT)}:{node.name}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for a in node.args.args + node.args.kwonlyargs:
                    if a.arg in found:
                        found[a.arg].append(f"{p.relative_to(ROOT)}:{node.name}()")
    return found


def flow_entries() -> dict[str, int]:
    """Run the demo flow once in a fresh folder, counting catalog connections and recipe loads."""
    import os

    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="metrics-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    counts = {"catalog.connect": 0, "load_recipe": 0}
    from curation import catalog

    real_connect = catalog.connect

    def counted_connect(*a, **kw):
        counts["catalog.connect"] += 1
        return real_connect(*a, **kw)

    catalog.connect = counted_connect
    recipe_mod = importlib.import_module("curation.quality.recipe")
    real_load = recipe_mod.load_recipe

    def counted_load(*a, **kw):
        counts["load_recipe"] += 1
        return real_load(*a, **kw)

    recipe_mod.load_recipe = counted_load
    for mod in list(sys.modules.values()):  # modules that imported the names before we wrapped them
        if getattr(mod, "__name__", "").startswith(PACKAGES):
            if getattr(mod, "load_recipe", None) is real_load:
                mod.load_recipe = counted_load
    pipeline = importlib.import_module("flows.curate")
    out = Path(tempfile.mkdtemp(prefix="metrics-flow-"))
    pipeline.curate_and_train(demo=True, demo_output=str(out))
    return counts


STAGE_COMMANDS = ("ingest", "quality", "score", "shard", "train", "eval", "reprofile", "export")
KIT_DIRS = ("testing", "demo")  # kit folders inside the product packages: all of it must be used by the product
DEFAULTS = {"template": "vlmr1", "threshold": 0.5, "partition_size": 64}


def _module_name(p: Path) -> str:
    parts = list(p.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    return {_module_name(p): (p, ast.parse(p.read_text())) for p in _files(PACKAGES)}


def import_graph(modules) -> dict[str, set[str]]:
    """Module -> first-party modules it imports anywhere (a ``from X import Y`` of a submodule names X.Y)."""
    graph: dict[str, set[str]] = {}
    for name, (path, tree) in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        guards = [i for i in ast.walk(tree) if isinstance(i, ast.If) and ast.unparse(i.test) == "TYPE_CHECKING"]
        typing_only = {id(n) for i in guards for b in i.body for n in ast.walk(b)}
        for node in ast.walk(tree):
            if id(node) in typing_only:  # no import at run time
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def import_circles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def unused_kit_lines(modules, graph) -> dict[str, int]:
    """Lines of kit modules (``KIT_DIRS``) that no product module outside the kit reaches."""
    kit = {m for m, (p, _) in modules.items() if set(p.relative_to(ROOT).parts) & set(KIT_DIRS)}
    seen, todo = set(), [m for m in modules if m not in kit]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph[m]
    seen |= {m.rpartition(".")[0] for m in seen}  # importing a.b runs a/__init__.py
    return {m: len(modules[m][0].read_text().splitlines()) for m in sorted(kit - seen)}


def _cli_files() -> list[Path]:
    single = ROOT / "flows" / "cli.py"
    return [single] if single.exists() else sorted((ROOT / "flows" / "cli").glob("*.py"))


def _calls(fn: ast.AST) -> set[str]:
    return {
        n.func.id if isinstance(n.func, ast.Name) else n.func.attr
        for n in ast.walk(fn)
        if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))
    }


def _stage_commands() -> dict[str, list[str]]:
    """Stage command -> the code names of its callbacks, read from the typer app itself (decorated, registered or
    generated commands alike); every ``ingest`` subcommand counts as ``ingest``."""
    cli = importlib.import_module("flows.cli")
    found: dict[str, list[str]] = {}

    def add(name: str, info) -> None:
        if name in STAGE_COMMANDS:
            found.setdefault(name, []).append(info.callback.__code__.co_name)

    for info in cli.app.registered_commands:
        add(info.name or info.callback.__name__.replace("_", "-"), info)
    for group in cli.app.registered_groups:
        for info in group.typer_instance.registered_commands:
            add(group.name if group.name == "ingest" else "", info)
    return found


def cli_faces() -> dict[str, object]:
    """Stage commands that print a StageReport (through any helper of the CLI modules), and the functions that
    decide an exit code (raise ``typer.Exit``/``SystemExit`` with one)."""
    functions: dict[str, ast.FunctionDef] = {}
    deciders = set()
    for p in _cli_files():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef):
                functions.setdefault(node.name, node)
                calls = [n for n in ast.walk(node) if isinstance(n, ast.Call) and n.args]
                if any(ast.unparse(n.func) in ("typer.Exit", "SystemExit", "Exit") for n in calls):
                    deciders.add(f"{p.stem}.{node.name}")

    def prints(name: str, seen: set) -> bool:
        if name in seen or name not in functions:
            return False
        seen.add(name)
        called = _calls(functions[name])
        return "print_report" in called or any(prints(c, seen) for c in called)

    commands = _stage_commands()
    printing = sorted(c for c, names in commands.items() if all(prints(n, set()) for n in names))
    return {"printing": printing, "deciders": sorted(deciders)}


def _package_names(node: ast.AST) -> list[ast.AST]:
    """Literals that name the package, not a dialect: ``version("vlmr1-curate")``, EasyR1's ``REWARD_NAME``."""
    if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("version"):
        return list(node.args)
    if isinstance(node, ast.Assign) and any(ast.unparse(t) == "REWARD_NAME" for t in node.targets):
        return [node.value]
    return []


def default_spellings(modules) -> dict[str, int]:
    """Literal defaults of template / threshold / partition_size (parameters, fields, ``Field(x)``), and string
    literals naming a reward dialect outside docstrings."""
    counts = {k: 0 for k in DEFAULTS} | {"dialect names": 0}

    def literal(node, value) -> bool:
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("Field", "Option")) and node.args:
            node = node.args[0]
        return isinstance(node, ast.Constant) and node.value == value and type(node.value) is type(value)

    for _, tree in modules.values():
        not_dialect = {id(a) for n in ast.walk(tree) for a in _package_names(n)}
        docs = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.ClassDef,
                ast.FunctionDef)) and n.body and isinstance(n.body[0], ast.Expr)}  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args[len(node.args.args) - len(node.args.defaults) :]
                pairs = list(zip(args, node.args.defaults)) + list(zip(node.args.kwonlyargs, node.args.kw_defaults))
                for a, d in pairs:
                    if a.arg in DEFAULTS and d is not None and literal(d, DEFAULTS[a.arg]):
                        counts[a.arg] += 1
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                if node.target.id in DEFAULTS and literal(node.value, DEFAULTS[node.target.id]):
                    counts[node.target.id] += 1
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                named = [k for k in DEFAULTS if f"DEFAULT_{k.upper()}" == node.targets[0].id]  # DEFAULT_TEMPLATE = ...
                counts.update({k: counts[k] + 1 for k in named if literal(node.value, DEFAULTS[k])})
            elif isinstance(node, ast.Constant) and node.value == "vlmr1-curate" and id(node) not in docs:
                counts["dialect names"] += id(node) not in not_dialect
    return counts


def faces() -> dict[str, object]:
    modules = _modules()
    graph = import_graph(modules)
    fan = max(graph, key=lambda m: len(graph[m]))
    cli = cli_faces()
    biggest = max(_cli_files(), key=lambda p: len(p.read_text().splitlines()))
    kit = unused_kit_lines(modules, graph)
    circles = import_circles(graph)
    readme = (ROOT / "README.md").read_text().splitlines()
    return {
        "largest CLI module (lines)": f"{len(biggest.read_text().splitlines())} ({biggest.relative_to(ROOT)})",
        "largest fan-out (first-party modules imported)": f"{len(graph[fan])} ({fan})",
        "stage commands printing their StageReport": f"{len(cli['printing'])}/{len(STAGE_COMMANDS)} "
        f"({', '.join(cli['printing'])})",
        "places an exit code is decided": f"{len(cli['deciders'])} ({', '.join(cli['deciders'])})",
        **{
            f"times {k} is written" if k == "dialect names" else f"times the default {k} is written": v
            for k, v in default_spellings(modules).items()
        },
        "import circles": f"{len(circles)} {circles if circles else ''}".strip(),
        "test-kit lines in product packages no product code uses": f"{sum(kit.values())} ({', '.join(kit)})",
        "README lines": len(readme),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flow", action="store_true", help="also run the demo flow and count catalog entries (~2 min)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    over, total = long_lines()
    funcs = long_functions()
    shapes = summary_shapes()
    knobs = knob_spellings()
    result = {
        "lines over 120": f"{over} of {total} ({over / total:.1%})",
        "functions over 60 lines": len(funcs),
        "summary shapes (distinct stage return types)": len(set(shapes.values())),
        "places a sampling knob is spelled (max over knobs)": max(len(v) for v in knobs.values()),
    }
    result.update(faces())
    if args.flow:
        result.update({f"demo flow: {k} calls": v for k, v in flow_entries().items()})
    print("| metric | value |\n|---|---|")
    for k, v in result.items():
        print(f"| {k} | {v} |")
    print(json.dumps({"functions": funcs, "shapes": shapes, "knobs": knobs}, indent=1))


if __name__ == "__main__":
    main()
