"""The ``ablation`` flow: arms (recipes, bands, pool sizes, scorers) over one catalog -> equal-size pools checked
for leakage -> each arm trained with several seeds at the same budget -> one fixed evaluation set -> intervals,
paired verdicts and controls (``curation.ablation``) -> tables, markdown and PNG, published as artifacts."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.logging import get_run_logger

from flows.artifacts import publish_comparison
from flows.caching import CONTENT
from flows.params import AblationParams, CatalogRef, FileRef, ModelRef, RecipeRef
from flows.tasks import eval_task, quality_task, shard_task, train_task
from vlmr1.report import StageReport


@task(name="arm-pools", cache_policy=CONTENT, persist_result=True)
def arm_pools_task(
    catalog: CatalogRef, arms: dict[str, RecipeRef], sizes: dict[str, int | None], scorers: dict[str, str | None],
    eval_recipe: RecipeRef, out: str,
) -> dict[str, StageReport]:  # fmt: skip
    """Each arm's pool (its recipe under its scorer; equal sizes, or the arm's own), checked against the
    evaluation set, written as shards."""
    from curation.ablation.arms import equal_pools, leakage
    from curation.selection.select import select
    from curation.shards.write import shard_report, write_shards

    evaluation = select(catalog.path, eval_recipe.load(), None, pool="eval")
    pools = equal_pools({name: select(catalog.path, r.load(), scorers[name]) for name, r in arms.items()}, sizes)
    reports = {}
    for name, sel in pools.items():
        report = shard_report(write_shards(sel, catalog.path, Path(out) / name))
        report.counts["leaked"] = leakage(catalog.path, sel.table["sample_id"], evaluation.table["sample_id"])
        reports[name] = report
    return reports


@flow(name="ablation", log_prints=True)
def ablation(
    params: AblationParams | None = None, demo: bool = False, demo_output: str = "demo-out/ablation-demo",
    testbed: bool = False,
) -> dict:  # fmt: skip
    """Arms x seeds at an equal pool size and budget, evaluated on one fixed set; intervals, verdicts, controls.
    ``demo``: none vs default on the demo fixtures; ``testbed``: the learnable testbed with its controls."""
    from curation.ablation.compare import ArmResult, compare, curve_point
    from curation.ablation.report import write_report
    from training.config import seeded_config
    from training.evaluate import rows_from_shards

    logger = get_run_logger()
    if params is None:
        if not (demo or testbed):
            raise ValueError("give params, demo=true or testbed=true")
        params = _testbed(Path(demo_output)) if testbed else _demo(Path(demo_output))
    out, catalog = Path(params.output), CatalogRef(path=params.catalog)
    arms = params.all_arms()
    recipes = {a.name: _arm_recipe(a, out) for a in arms}
    eval_recipe = RecipeRef(spec=params.eval_recipe)
    reports = [quality_task(catalog, r) for r in {r.spec: r for r in [*recipes.values(), eval_recipe]}.values()]
    ev = shard_task(catalog, eval_recipe, None, str(out / "eval"), "eval")
    sizes, scorers = {a.name: a.pool_size for a in arms}, {a.name: a.scorer_key or params.scorer_key for a in arms}
    pools = arm_pools_task(catalog, recipes, sizes, scorers, eval_recipe, str(out / "shards"))
    reports += [ev, *pools.values()]
    start = _start_point(params, ev, catalog)
    results = []
    for arm in arms:
        pool = pools[arm.name]
        done = ArmResult(
            arm.name, arm.recipe, arm.seeds or params.seeds, pool.counts["rows"], pool.counts["leaked"], []
        )
        for seed in done.seeds:
            run = out / "train" / arm.name / f"seed{seed}"
            config = seeded_config(params.train_config, seed, run.parent, params.eval_every)  # beside its run
            label = f"{arm.name}-seed{seed}"  # its artifacts' keys
            trained = train_task(FileRef(path=str(config)), FileRef(path=pool.files["manifest"]), str(run),
                                 params.nprocs, label)  # fmt: skip
            final, eval_data = ModelRef(path=trained.files["final"]), FileRef(path=ev.files["manifest"])
            evaluated = eval_task(final, eval_data, catalog, f"ablation:{arm.name}:seed{seed}", label,
                                  params.evaluation, FileRef(path=str(config)))  # fmt: skip
            done.results.append(_read_json(evaluated.files["results"]))
            done.curves.append(trained.tables.get("training curve", []))
            steps = trained.counts["global step"]
            name = f"ablation:{arm.name}:seed{seed}"
            points = _checkpoint_points(params, run, steps, ev, catalog, name) if start else []
            done.checkpoints.append(start + points + [curve_point(steps, done.results[-1])])
            reports += [trained, evaluated]
            logger.info(f"arm {arm.name} seed {seed}: trained and evaluated")
        results.append(done)
    eval_rows = rows_from_shards(Path(ev.files["manifest"]).parent)
    comparison = compare(results, params.comparisons(), eval_rows, params.bootstrap)
    files = write_report(comparison, out / "comparison", title=f"ablation ({len(params.seeds)} seeds per arm)")
    publish_comparison(comparison, files)
    for c in comparison["controls"]:
        logger.info(f"{c['control']} control {c['pair']} ({c['split']} {c['metric']}): {c['verdict']} -> "
                    f"{'passed' if c['passed'] else 'FAILED'}")  # fmt: skip
    return {**comparison, "files": files, "stages": [r.summary_row() for r in reports]}


def _start_point(params: AblationParams, ev: StageReport, catalog: CatalogRef) -> list[dict]:
    """With ``eval_every``: the start model evaluated once, step 0 of every evaluation curve."""
    from curation.ablation.compare import curve_point
    from training.config import load_config

    if not params.eval_every:
        return []
    model = ModelRef(path=load_config(params.train_config).model)
    evaluated = eval_task(model, FileRef(path=ev.files["manifest"]), catalog, "ablation:start", "start",
                          params.evaluation, FileRef(path=params.train_config))  # fmt: skip
    return [curve_point(0, _read_json(evaluated.files["results"]))]


def _checkpoint_points(
    params: AblationParams, run: Path, last: int, ev: StageReport, catalog: CatalogRef, name: str
) -> list[dict]:
    """The run's checkpoints before its last step, each evaluated on the evaluation set."""
    from curation.ablation.compare import curve_point
    from training.outputs import checkpoints

    points = []
    for step, ckpt in (c for c in checkpoints(run) if c[0] < last):
        part = f"{name.split(':', 1)[-1]}-{ckpt.name}"
        evaluated = eval_task(ModelRef(path=str(ckpt)), FileRef(path=ev.files["manifest"]), catalog, name, part,
                              params.evaluation, FileRef(path=params.train_config))  # fmt: skip
        points.append(curve_point(step, _read_json(evaluated.files["results"])))
    return points


def _read_json(path: str) -> dict:
    import json

    return json.loads(Path(path).read_text())


def _arm_recipe(arm, out: Path) -> RecipeRef:
    """The arm's recipe reference: the recipe itself, or a copy with the arm's band written beside the outputs."""
    import yaml

    if arm.band is None:
        return RecipeRef(spec=arm.recipe)
    path = out / "recipes" / f"{arm.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(arm.effective_recipe().model_dump(mode="json"), sort_keys=False))
    return RecipeRef(spec=str(path))


def _demo(out: Path) -> AblationParams:
    """The demo catalog scored (curate-and-train without training), then none vs default on it."""
    from flows.curate import curate_and_train
    from flows.params import demo_params

    p = demo_params(out)
    base = curate_and_train.fn(p.model_copy(update={"train_config": None}))
    scorer_key = next((s.get("scorer") for s in base.get("stages", []) if s["stage"] == "score"), None)
    return AblationParams(
        catalog=p.catalog,
        output=str(out.resolve() / "ablation"),
        recipes=["none", "default"],
        train_config=p.train_config,
        scorer_key=scorer_key,
        seeds=[0, 1],
        bootstrap=500,
    )


def _testbed(out: Path) -> AblationParams:
    """The learnable testbed ingested, then its controls and default vs none (``curation.demo.testbed``)."""
    from flows.testbed import testbed_params

    return testbed_params(out)
