"""Difficulty scoring on a Ray cluster: the local scorer's plan, seeds and partition files, run by an actor pool.

Only the driver touches the catalog (DuckDB stays the single writer) and
Prefect: each actor holds one engine (hf on CPU; vLLM, one per GPU; the
managed server engine too), scores the partitions it is handed and writes
each one's rollouts to the same deterministically named parquet file the
local scorer writes (``part-NNNNNN.parquet``, write then rename); the
driver merges a file as its task completes, with the local scorer's
idempotent transaction. So:

- the result is the local scorer's, row for row: same partitions, same seeds
  (a partition's seed is its index among all candidates), same batches;
- a killed actor is restarted by Ray and its partition retried; the retry
  writes the same file, and a merge never inserts a sample twice;
- a killed driver leaves finished files, merged first by the next run, which
  then scores exactly the unscored samples.

Ray is imported only here, and only when Ray is asked for.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from curation.difficulty.config import ScorerConfig
from curation.difficulty.scoring import ScorerSpec, ScoreSummary, merge_partition, prepare_run, score_partition
from curation.quality.recipe import Recipe
from curation.ray_cluster import RaySpec, connect
from vlmr1.rollout.spec import EngineSpec


class PartitionScorer:
    """One engine in a Ray actor: scores whole partitions and writes their files."""

    def __init__(self, engine: EngineSpec | Callable):
        self.engine = engine.build() if isinstance(engine, EngineSpec) else engine()

    def identity(self) -> tuple[dict, dict]:
        return self.engine.describe(), self.engine.family.key()

    def score(self, spec: ScorerSpec, p_index: int, chunk: list[dict], work: str) -> tuple[int, tuple]:
        """Score and write one partition; return its index and (generate seconds, tokens, completions) spent."""
        stats = self.engine.stats
        before = (stats.generate_seconds, stats.tokens, stats.completions)
        score_partition(self.engine, spec, p_index, chunk, Path(work))
        return p_index, (stats.generate_seconds - before[0], stats.tokens - before[1], stats.completions - before[2])

    def close(self) -> None:
        from vlmr1.rollout import close_engine

        close_engine(self.engine)


def score_recipe_ray(
    catalog_path: str | Path,
    recipe: Recipe,
    engine: EngineSpec | Callable,
    config: ScorerConfig,
    *,
    limit: int | None = None,
    work_dir: str | Path | None = None,
    progress: Callable[[int, int, ScoreSummary], None] | None = None,
) -> ScoreSummary:
    """``scoring.score_recipe`` on ``config.ray``'s cluster: ``engine`` (a spec, or a factory for tests) is built in
    every actor."""
    t_start = time.perf_counter()
    ray_spec = config.ray or RaySpec()
    ray = connect(ray_spec)
    from ray.util import ActorPool

    resources = {"num_cpus": ray_spec.cpus_per_actor, "num_gpus": ray_spec.gpus_per_actor}
    actor = ray.remote(max_restarts=-1, max_task_retries=-1, **resources)(PartitionScorer)
    actors = [actor.remote(engine) for _ in range(ray_spec.actors)]
    try:
        model, family = ray.get(actors[0].identity.remote())
        spec = ScorerSpec(model, family, config)
        work, plan, summary = prepare_run(catalog_path, recipe, spec, limit, work_dir)
        pool = f"{ray_spec.actors} actor" + ("s" if ray_spec.actors != 1 else "")
        summary.backend = f"ray: {pool}, {ray_spec.address or 'a local cluster'}"
        todo_total = sum(len(chunk) for _, chunk in plan)
        jobs = ActorPool(actors).map_unordered(lambda a, job: a.score.remote(spec, job[0], job[1], str(work)), plan)
        sizes = {p_index: len(chunk) for p_index, chunk in plan}
        for p_index, (seconds, tokens, completions) in jobs:
            merge_partition(catalog_path, work / f"part-{p_index:06d}.parquet", spec)
            summary.scored_now += sizes[p_index]
            summary.partitions_merged += 1
            summary.generate_seconds += seconds
            summary.tokens += tokens
            summary.completions += completions
            summary.wall_seconds = time.perf_counter() - t_start
            if progress:
                progress(summary.scored_now, todo_total, summary)
    finally:
        ray.get([a.close.remote() for a in actors])
        for a in actors:
            ray.kill(a)
    summary.wall_seconds = time.perf_counter() - t_start
    return summary
