"""The ``ablation`` flow: recipes over one catalog -> equal-size pools -> same budget and seed -> evaluation ->
one comparison (table artifact, markdown, PNG, catalog rows)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.caching import CONTENT
from flows.params import AblationParams, CatalogRef, FileRef, ModelRef, RecipeRef, demo_params
from flows.tasks import eval_task, quality_task, shard_task, train_task
from vlmr1.report import StageReport


@task(name="select-equal-size", cache_policy=CONTENT, persist_result=True)
def equal_pools_task(
    catalog: CatalogRef, recipes: list[RecipeRef], scorer_key: str | None, out: str
) -> list[StageReport]:
    from curation.selection import equal_size, select
    from curation.shards import shard_report, write_shards

    pools = equal_size([select(catalog.path, r.load(), scorer_key) for r in recipes])
    return [shard_report(write_shards(sel, catalog.path, Path(out) / sel.recipe.name)) for sel in pools]


@flow(name="ablation", log_prints=True)
def ablation(params: AblationParams | None = None, demo: bool = False, demo_output: str = "demo-out/ablation") -> dict:
    """Recipes over one catalog -> equal-size pools -> same training budget and seed -> evaluation -> one
    comparison table."""
    from curation.evaluations import write_comparison

    if params is None:
        if not demo:
            raise ValueError("give params, or demo=true")
        params = _demo(Path(demo_output))
    out, catalog = Path(params.output), CatalogRef(path=params.catalog)
    recipes = [RecipeRef(spec=r) for r in params.recipes]
    reports = [quality_task(catalog, r) for r in recipes]
    pools = equal_pools_task(catalog, recipes, params.scorer_key, str(out / "shards"))
    ev = shard_task(catalog, recipes[0], None, str(out / "eval"), "eval")
    rows = []
    reports += list(pools) + [ev]
    for pool, recipe in zip(pools, recipes, strict=True):
        arm = out / "train" / recipe.spec
        trained = train_task(
            FileRef(path=params.train_config), FileRef(path=pool.files["manifest"]), str(arm), params.nprocs
        )
        evaluated = eval_task(
            ModelRef(path=trained.files["final"]),
            FileRef(path=ev.files["manifest"]),
            catalog,
            f"ablation:{recipe.spec}",
        )
        reports += [trained, evaluated]
        for table in evaluated.tables.values():
            for m in table:
                rows.append(
                    {"recipe": recipe.spec, "recipe_hash": recipe.content_key(), "pool_size": pool.counts["rows"], **m}
                )
    md, png = write_comparison(rows, out)
    report = StageReport(
        "comparison",
        "ablation: equal pool sizes",
        tables={"comparison": rows},
        files={"markdown": str(md), "plot": str(png)},
    )
    create_table_artifact(
        key="ablation-comparison",
        table=report.table("comparison"),
        description=f"metric per recipe and split; {md}, {png}",
    )
    create_markdown_artifact(key="ablation-comparison-md", markdown=md.read_text())
    return {"comparison": rows, "report": str(md), "plot": str(png), "stages": [r.summary_row() for r in reports]}


def _demo(out: Path) -> AblationParams:
    """The demo catalog scored (curate-and-train without training), then none vs default on it."""
    from flows.curate import curate_and_train

    p = demo_params(out)
    base = curate_and_train.fn(p.model_copy(update={"train_config": None}))
    scorer_key = next((s.get("scorer") for s in base.get("stages", []) if s["stage"] == "score"), None)
    return AblationParams(
        catalog=p.catalog,
        output=str(out.resolve() / "ablation"),
        recipes=["none", "default"],
        train_config=p.train_config,
        scorer_key=scorer_key,
    )
