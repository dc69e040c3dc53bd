"""Where a scorer config runs: in this process, or on Ray with ``config.ray``. Above both scorers, so neither
imports the other."""

from __future__ import annotations

from pathlib import Path

from curation.difficulty.config import ScorerConfig
from curation.difficulty.scoring import ScoreSummary, score_recipe
from curation.quality.recipe import Recipe


def score_with(
    catalog_path: str | Path, recipe: Recipe, config: ScorerConfig, *, limit: int | None = None, progress=None
) -> ScoreSummary:
    """Build the config's engine (here, or in every Ray actor with ``config.ray``) and score ``recipe``'s
    candidates with it."""
    from vlmr1.rollout import closing

    if config.ray is not None:  # every actor builds the engine; only this process touches the catalog
        from curation.difficulty.ray import score_recipe_ray

        return score_recipe_ray(catalog_path, recipe, config.engine, config, limit=limit, progress=progress)
    with closing(config.engine.build()) as engine:  # a vllm-server or vllm worker stops however scoring ends
        return score_recipe(catalog_path, recipe, engine, config, limit=limit, progress=progress)
