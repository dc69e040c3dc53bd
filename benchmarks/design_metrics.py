"""Design metrics of the code base, measured the same way before and after a refactor (issue 13's table).

- lines over 120 characters (every .py file of the packages, tests and benchmarks);
- library functions over 60 lines (vlmr1, curation, training, flows; AST, decorators excluded);
- summary shapes: distinct return types of the stage entry points (one per stage is six-plus shapes);
- places a sampling knob is spelled: class fields and function parameters named temperature, top_p, top_k,
  max_new_tokens (AST), counted per knob;
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
    [("curation.difficulty", "score_recipe")],
    [("curation.selection", "select")],
    [("curation.shards", "write_shards")],
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
    if args.flow:
        result.update({f"demo flow: {k} calls": v for k, v in flow_entries().items()})
    print("| metric | value |\n|---|---|")
    for k, v in result.items():
        print(f"| {k} | {v} |")
    print(json.dumps({"functions": funcs, "shapes": shapes, "knobs": knobs}, indent=1))


if __name__ == "__main__":
    main()
