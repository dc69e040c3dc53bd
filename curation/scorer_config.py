"""The scorer knob set: engine, sampler, template, pass threshold, partition size, in one YAML file.

``vlmr1 score RECIPE --config scorer.yaml`` (plus a few overrides) and the flows' ``scorer`` parameter both
read this model; ``score_with`` is the one call from a config to ``difficulty.score_recipe``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from curation.ray_scoring import RaySpec
from vlmr1.rollout.base import Sampling
from vlmr1.rollout.spec import EngineSpec
from vlmr1.yamlfiles import ConfigError, load_model


class ScorerConfigError(ConfigError):
    pass


class ScorerConfig(BaseModel):
    """What a difficulty scorer runs: the scorer key is derived from it (and the model's identity) at scoring time."""

    model_config = ConfigDict(extra="forbid")

    engine: EngineSpec
    sampling: Sampling = Field(default_factory=Sampling)
    template: str = "vlmr1"
    threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="a completion passes when its task reward is at least this"
    )
    partition_size: int = Field(64, ge=1, description="samples per partition: the unit of resume")
    dialect: Literal["vlmr1-curate", "vlmr1"] = Field(
        "vlmr1-curate", description="reward semantics of a pass: ours, or VLM-R1's released ones (README table)"
    )
    ray: RaySpec | None = Field(None, description="score on Ray (same results); None: in this process, no Ray")


def load_scorer_config(path: str | Path) -> ScorerConfig:
    return load_model(path, ScorerConfig, ScorerConfigError)


def score_with(
    catalog_path: str | Path,
    recipe,
    config: ScorerConfig,
    *,
    limit: int | None = None,
    progress: Callable | None = None,
):
    """Build the config's engine and score ``recipe``'s candidates with it; returns ``difficulty.ScoreSummary``."""
    from curation.difficulty import score_recipe
    from vlmr1.rollout import closing

    knobs = {
        "template": config.template,
        "sampling": config.sampling,
        "threshold": config.threshold,
        "dialect": config.dialect,
        "limit": limit,
        "partition_size": config.partition_size,
        "progress": progress,
    }
    if config.ray is not None:  # every actor builds the engine; only this process touches the catalog
        from curation.ray_scoring import score_recipe_ray

        return score_recipe_ray(catalog_path, recipe, config.engine, config.ray, **knobs)
    with closing(config.engine.build()) as engine:  # a vllm-server or vllm worker stops however scoring ends
        return score_recipe(catalog_path, recipe, engine, **knobs)
