"""Prefect tasks: each calls one stage of ``flows.stages`` with typed inputs and publishes its ``StageReport``.

Caching is the ``ContentKey`` policy over the inputs (catalog snapshot, recipe hash, scorer config, file
hashes); ingest is not cached: the library skips a known file after one hash and one query.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger

from curation.difficulty.config import ScorerConfig
from curation.ingest.source import SourceSpec
from curation.ray_cluster import RaySpec
from flows import stages
from flows.artifacts import publish
from flows.caching import CONTENT
from flows.params import CatalogRef, FileRef, ModelRef, RecipeRef
from flows.progress import StageProgress
from training.evaluate import EvalConfig
from vlmr1.report import StageReport


def _timed(report: StageReport, t0: float, part: str | None = None) -> StageReport:
    """The report with its total time, published (``part``: which run of the stage, for distinct artifact keys)."""
    report.timings.setdefault("total", time.perf_counter() - t0)
    publish(report, part=part)
    return report


@task(name="ingest", retries=1, retry_delay_seconds=2)
def ingest_task(catalog: CatalogRef, source: SourceSpec, ray: RaySpec | None = None) -> StageReport:
    t0 = time.perf_counter()
    return _timed(stages.ingest(catalog.path, [source], ray), t0, part=f"{source.kind}-{Path(source.path).stem}")


@task(name="quality", cache_policy=CONTENT, persist_result=True)
def quality_task(catalog: CatalogRef, recipe: RecipeRef) -> StageReport:
    t0 = time.perf_counter()
    report = stages.quality(catalog.path, recipe.load())
    return _timed(report, t0, part=report.counts["recipe"])  # an ablation evaluates several recipes


@task(name="score", cache_policy=CONTENT, persist_result=True, retries=1, retry_delay_seconds=5)
def score_task(catalog: CatalogRef, recipe: RecipeRef, scorer: ScorerConfig) -> StageReport:
    t0 = time.perf_counter()
    progress = StageProgress("scoring-progress", "scoring", "samples")
    report = stages.score(
        catalog.path, recipe.load(), scorer, progress=lambda done, total, _: progress.update(done, total)
    )
    return _timed(report, t0)


@task(name="shard", cache_policy=CONTENT, persist_result=True)
def shard_task(catalog: CatalogRef, recipe: RecipeRef, scorer_key: str | None, out: str, pool: str) -> StageReport:
    t0 = time.perf_counter()
    return _timed(
        stages.shard(catalog.path, [recipe.load()], out, scorer=scorer_key, pool=pool), t0, part=Path(out).name
    )


@task(name="train", cache_policy=CONTENT, persist_result=True)
def train_task(
    config: FileRef,
    manifest: FileRef,
    output: str,
    nprocs: int,
    part: str | None = None,
    catalog: CatalogRef | None = None,
) -> StageReport:
    """A run into a content-addressed folder: one that holds a run is an earlier, unfinished try (a finished one is
    this task's cached result), so it is started again. With ``catalog``, the run is recorded there."""
    from training.launch import STEP, LaunchSpec

    t0 = time.perf_counter()
    logger = get_run_logger()
    progress = StageProgress("training-progress", "training", "steps")

    def log(line: str) -> None:
        step = STEP.search(line)
        if step:
            progress.update(int(step[1]), int(step[2]))
        elif "VLMR1" in line or "Error" in line:
            logger.info(line)

    spec = LaunchSpec(config.path, manifest.path, output, nprocs=nprocs)
    report = stages.train(spec, overwrite=True, on_line=log, catalog=catalog.path if catalog else None)
    return _timed(report, t0, part)


@task(name="evaluate", cache_policy=CONTENT, persist_result=True)
def eval_task(
    checkpoint: ModelRef,
    shards: FileRef,
    catalog: CatalogRef,
    run: str,
    part: str | None = None,
    config: EvalConfig | None = None,
    train_config: FileRef | None = None,
) -> StageReport:
    t0 = time.perf_counter()
    report = stages.evaluate(checkpoint.path, [shards.path], config or EvalConfig(), catalog=catalog.path, run=run,
                             train_config=train_config.path if train_config else None)  # fmt: skip
    return _timed(report, t0, part)


@task(name="reprofile", cache_policy=CONTENT, persist_result=True)
def reprofile_task(catalog: CatalogRef, base: str, current: str) -> StageReport:
    t0 = time.perf_counter()
    return _timed(stages.reprofile(catalog.path, base, current), t0)


@task(name="export")
def export_task(shards: FileRef, to: str, out: str) -> StageReport:
    """Not cached: the export folder is the user's, and may have been changed since."""
    t0 = time.perf_counter()
    return _timed(stages.export(Path(shards.path).parent, to, out, overwrite=True), t0, part=to)


@task(name="record")
def record_task(catalog: CatalogRef, manifest: FileRef, output: str, base_model: str) -> StageReport:
    """Merge the run's per-sample rewards and lineage into the catalog (idempotent, so not cached)."""
    t0 = time.perf_counter()
    return _timed(stages.record(catalog.path, manifest.path, output, base_model), t0)
