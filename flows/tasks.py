"""Prefect tasks: one library call each, typed inputs, a ``StageReport`` out, published when the stage ends.

Caching is the ``ContentKey`` policy over the inputs (catalog snapshot, recipe hash, scorer config, file
hashes); ingest is not cached: the library skips a known file after one hash and one query.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger

from curation.ray_cluster import RaySpec
from curation.scorer_config import ScorerConfig
from flows.artifacts import publish
from flows.caching import CONTENT
from flows.params import CatalogRef, FileRef, ModelRef, RecipeRef, SourceSpec
from flows.progress import StageProgress
from vlmr1.report import StageReport


def _timed(report: StageReport, t0: float, part: str | None = None) -> StageReport:
    """The report with its total time, published (``part``: which run of the stage, for distinct artifact keys)."""
    report.timings.setdefault("total", time.perf_counter() - t0)
    publish(report, part=part)
    return report


@task(name="ingest", retries=1, retry_delay_seconds=2)
def ingest_task(catalog: CatalogRef, source: SourceSpec, ray: RaySpec | None = None) -> StageReport:
    t0 = time.perf_counter()
    summary = source.reader().ingest(catalog.path, source.path, images=source.image_check(ray))
    return _timed(summary.report(), t0, part=f"{source.kind}-{Path(source.path).stem}")


@task(name="quality", cache_policy=CONTENT, persist_result=True)
def quality_task(catalog: CatalogRef, recipe: RecipeRef) -> StageReport:
    from curation.quality.apply import evaluate_recipe
    from curation.quality.report import write_quality_report

    t0 = time.perf_counter()
    r = evaluate_recipe(catalog.path, recipe.load())
    report = r.report()
    report.files.update(
        write_quality_report(r, Path(catalog.path).parent / "reports" / "quality" / f"{r.recipe.name}-{r.recipe_hash}")
    )
    return _timed(report, t0, part=r.recipe.name)  # an ablation evaluates several recipes


@task(name="score", cache_policy=CONTENT, persist_result=True, retries=1, retry_delay_seconds=5)
def score_task(catalog: CatalogRef, recipe: RecipeRef, scorer: ScorerConfig) -> StageReport:
    from curation.difficulty import write_difficulty_report
    from curation.scorer_config import score_with

    t0 = time.perf_counter()
    progress = StageProgress("scoring-progress", "scoring", "samples")
    s = score_with(catalog.path, recipe.load(), scorer, progress=lambda done, total, _: progress.update(done, total))
    report = s.report(catalog.path)
    report.files.update(
        write_difficulty_report(
            catalog.path, s.scorer_key, Path(catalog.path).parent / "reports" / "difficulty" / s.scorer_key
        )
    )
    return _timed(report, t0)


@task(name="shard", cache_policy=CONTENT, persist_result=True)
def shard_task(catalog: CatalogRef, recipe: RecipeRef, scorer_key: str | None, out: str, pool: str) -> StageReport:
    from curation.selection import select
    from curation.shards import shard_report, write_shards

    t0 = time.perf_counter()
    selection = select(catalog.path, recipe.load(), scorer_key, pool=pool)
    return _timed(shard_report(write_shards(selection, catalog.path, Path(out)), pool), t0, part=Path(out).name)


@task(name="train", cache_policy=CONTENT, persist_result=True)
def train_task(config: FileRef, manifest: FileRef, output: str, nprocs: int, part: str | None = None) -> StageReport:
    from training.launch import STEP, LaunchSpec, run
    from training.preflight import preflight

    t0 = time.perf_counter()
    logger = get_run_logger()
    preflight(config.path, manifest.path)  # a wrong value or path fails now, in one line, not after the launch

    progress = StageProgress("training-progress", "training", "steps")

    def log(line: str) -> None:
        step = STEP.search(line)
        if step:
            progress.update(int(step[1]), int(step[2]))
        elif "VLMR1" in line or "Error" in line:
            logger.info(line)

    r = run(LaunchSpec(config.path, manifest.path, output, nprocs=nprocs), on_line=log)
    if r.returncode:
        raise RuntimeError(f"training failed (exit {r.returncode}): {r.last_error}; log {r.log}")
    return _timed(r.report(), t0, part)


@task(name="evaluate", cache_policy=CONTENT, persist_result=True)
def eval_task(
    checkpoint: ModelRef, shards: FileRef, catalog: CatalogRef, run: str, part: str | None = None
) -> StageReport:
    from curation.evaluations import record
    from training.evaluate import evaluate_model, evaluation_report, rows_from_shards, shards_dialect, write_results
    from vlmr1.rollout import make_engine
    from vlmr1.rollout.base import Sampling

    t0 = time.perf_counter()
    checkpoint_dir, data = Path(checkpoint.path), Path(shards.path).parent
    engine, rows = make_engine("hf", str(checkpoint_dir)), rows_from_shards(data)
    results = evaluate_model(engine, rows, sampling=Sampling.greedy(max_new_tokens=48), dialect=shards_dialect(data))
    path = write_results(results, checkpoint_dir, data.name)
    record(catalog.path, path, run=run)
    return _timed(evaluation_report(results, path), t0, part)


@task(name="record")
def record_task(catalog: CatalogRef, manifest: FileRef, output: str, base_model: str) -> StageReport:
    """Merge the run's per-sample rewards and lineage into the catalog (idempotent, so not cached)."""
    from curation.runs import record_run

    t0 = time.perf_counter()
    return _timed(record_run(catalog.path, manifest.path, output, base_model).report(), t0)
