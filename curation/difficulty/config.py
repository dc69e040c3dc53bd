"""The scorer knob set: engine, sampler, template, pass threshold, partition size, in one YAML file.

``vlmr1 score RECIPE --config scorer.yaml`` (plus a few overrides) and the flows' ``scorer`` parameter both
read this model; the scorer takes it whole (``dispatch.score_with``), and its key is derived from it
(``scoring.ScorerSpec``). Its defaults are the only place template, threshold and partition size are written.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from curation.difficulty.adaptive import AdaptiveConfig
from curation.ray_cluster import RaySpec
from vlmr1.prompts import DEFAULT_TEMPLATE
from vlmr1.rewards import DEFAULT_DIALECT, Dialect
from vlmr1.rollout.base import Sampling
from vlmr1.rollout.spec import EngineSpec
from vlmr1.yamlfiles import ConfigError, load_model, validate_options


class ScorerConfigError(ConfigError):
    pass


class ScorerConfig(BaseModel):
    """What a difficulty scorer runs: the scorer key is derived from it (and the model's identity) at scoring time."""

    model_config = ConfigDict(extra="forbid")

    engine: EngineSpec = Field(default_factory=EngineSpec, description="the model scored; required to build")
    sampling: Sampling = Field(default_factory=Sampling)
    template: str = DEFAULT_TEMPLATE
    threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="a completion passes when its task reward is at least this"
    )
    partition_size: int = Field(64, ge=1, description="samples per partition: the unit of resume")
    dialect: Dialect = Field(
        DEFAULT_DIALECT, description="reward semantics of a pass: ours, or VLM-R1's released ones (README table)"
    )
    ray: RaySpec | None = Field(None, description="score on Ray (same results); None: in this process, no Ray")
    adaptive: AdaptiveConfig | None = Field(
        None,
        description="roll out in rounds and stop each sample when more could not change its decisions, at most "
        "sampling.n (docs/difficulty.md); None: every sample gets sampling.n",
    )
    group: int = Field(8, ge=2, description="GRPO's group size G the difficulty's P(no signal at G) is for")


def load_scorer_config(path: str | Path) -> ScorerConfig:
    return load_model(path, ScorerConfig, ScorerConfigError)


def scorer_config(path: str | Path | None, overrides: dict[str, dict], ray: RaySpec | None = None) -> ScorerConfig:
    """The scorer config from YAML (or defaults) with the command line's overrides (None: not given) and its Ray
    options over the config's ray block."""
    raw = load_scorer_config(path).model_dump(exclude_unset=True) if path else {}
    for section, values in overrides.items():
        raw.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    if ray is not None:
        raw["ray"] = (raw.get("ray") or {}) | ray.model_dump(exclude_unset=True)
    config = validate_options(ScorerConfig, raw, "scorer option", ScorerConfigError)
    if not config.engine.model:
        raise ScorerConfigError("give --model, or a --config whose engine names a model")
    return config
