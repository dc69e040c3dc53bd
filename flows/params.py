"""Flow parameters and the typed references tasks pass each other (each knows its own content key)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from curation.ablation.arms import Arm, Comparison, arms_from
from curation.difficulty.config import ScorerConfig
from curation.ingest.source import SourceSpec
from curation.ray_cluster import RaySpec
from training.evaluate import EvalConfig


class CatalogRef(BaseModel):
    """A catalog file; its content key is its sources snapshot (what was ingested, not when)."""

    path: str

    def content_key(self) -> str:
        from curation.catalog import snapshot

        return snapshot(self.path)["sources_sha256"] if Path(self.path).exists() else "empty"


class RecipeRef(BaseModel):
    """A shipped recipe name or a recipe file; its content key is the recipe hash (resolved SQL + selection)."""

    spec: str
    _recipe: object = PrivateAttr(default=None)

    def load(self):
        """The parsed recipe, read once per reference."""
        from curation.quality.recipe import load_recipe

        if self._recipe is None:
            self._recipe = load_recipe(self.spec)
        return self._recipe

    def content_key(self) -> str:
        return self.load().hash


class FileRef(BaseModel):
    """A file whose bytes are its identity (a training config, a shard manifest)."""

    path: str

    def content_key(self) -> str:
        from vlmr1.hashing import sha256_file

        return sha256_file(self.path) if Path(self.path).exists() else "missing"


class ModelRef(BaseModel):
    """A model folder; its content key is the hash of its weights and configs."""

    path: str

    def content_key(self) -> str:
        from vlmr1.rollout.hf import model_hash

        return model_hash(self.path)


class PipelineParams(BaseModel):
    catalog: str
    output: str
    sources: list[SourceSpec]
    recipe: str = "default"
    scorer: ScorerConfig | None = None
    ray: RaySpec | None = Field(None, description="image probing and scoring on Ray (same results); None: no Ray")
    train_config: str | None = None
    nprocs: int = 1
    evaluate: bool = True
    evaluation: EvalConfig | None = Field(
        None,
        description="greedy evaluation's engine and length; None: the scorer's engine (hf without one), answers "
        "as long as the training config's max_completion_length",
    )
    on_new_data: Literal["restart", "continue"] = "restart"
    reprofile: bool = Field(
        False,
        description="retraining rounds: score under the current policy (the last checkpoint), drop what it "
        "mastered (the recipe's `mastered` rule), continue from it; a round also runs when only the policy changed",
    )

    def eval_config(self) -> EvalConfig:
        """The evaluation config: the one given, or the scorer's engine kind and options (its model is the
        checkpoint evaluated)."""
        if self.evaluation is not None:
            return self.evaluation
        return EvalConfig(engine=self.scorer.engine) if self.scorer is not None else EvalConfig()


class AblationParams(BaseModel):
    """Arms (or one per recipe) x seeds at an equal pool size and budget, on one fixed evaluation set."""

    model_config = ConfigDict(extra="forbid")
    catalog: str
    output: str
    train_config: str
    recipes: list[str] = Field(default_factory=list, description="one arm per recipe (shorthand for arms)")
    arms: list[Arm] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    eval_recipe: str = Field("default", description="the evaluation set's recipe: the same for every arm")
    scorer_key: str | None = None
    pool_sizes: list[int] = Field(default_factory=list, description="a data-scaling curve of the first arm")
    compare: list[Comparison] = Field(default_factory=list, description="pairs to compare; default: each vs first")
    bootstrap: int = Field(2000, ge=100)
    eval_every: int | None = Field(
        None, gt=0, description="also evaluate every N training steps (and the start model): evaluation curves"
    )
    nprocs: int = 1
    evaluation: EvalConfig = Field(
        default_factory=EvalConfig, description="every arm's greedy evaluation (length: the training config's)"
    )

    def all_arms(self) -> list[Arm]:
        return arms_from(self.recipes, self.arms, self.pool_sizes)

    def comparisons(self) -> list[Comparison]:
        arms = self.all_arms()
        return self.compare or [Comparison(a=a.name, b=arms[0].name) for a in arms[1:]]

    @model_validator(mode="after")
    def _known_arms(self) -> AblationParams:
        names = {a.name for a in self.all_arms()}
        for c in self.compare:
            if {c.a, c.b} - names:
                raise ValueError(
                    f"compare {c.a} vs {c.b}: no arm named {sorted({c.a, c.b} - names)}; arms: {sorted(names)}"
                )
        return self


def demo_params(out: Path, say=None) -> PipelineParams:
    """The demo's fixtures, tiny model and training config as pipeline parameters (``say``: progress lines)."""
    from curation.demo.inputs import write_demo_inputs

    demo = write_demo_inputs(out, say)
    sources = [SourceSpec(kind=kind, path=str(path), images=[str(root)]) for kind, path, root in demo.sources]
    scorer = ScorerConfig.model_validate(
        {"engine": {"model": str(demo.model)}, "sampling": {"n": 4, "max_new_tokens": 40}}
    )
    return PipelineParams(
        catalog=str(demo.root / "catalog.duckdb"),
        output=str(demo.root / "run"),
        sources=sources,
        recipe="default",
        scorer=scorer,
        train_config=str(demo.train_config),
    )
