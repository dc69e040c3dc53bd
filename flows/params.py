"""Flow parameters and the typed references tasks pass each other (each knows its own content key)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from curation.ray_cluster import RaySpec
from curation.scorer_config import ScorerConfig


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


class SourceSpec(BaseModel):
    """One annotation file to ingest, with the same reader options as ``vlmr1 ingest``.

    ``options`` are the reader's fields (``curation.ingest.READERS[kind]``), checked when the parameters are.
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["coco", "refcoco", "d3", "jsonl"]
    path: str
    images: list[str] = Field(default_factory=list)
    verify_images: bool = False
    keep_bad_images: bool = False
    options: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _options_fit_reader(self) -> SourceSpec:
        self.reader()
        return self

    def reader(self):
        from curation.ingest import make_reader

        return make_reader(self.kind, **self.options)

    def image_check(self, ray: RaySpec | None = None):
        from curation.images import ImageCheck

        roots = [Path(r) for r in self.images]
        reject = not self.keep_bad_images
        return ImageCheck(roots, verify=self.verify_images, reject=reject, ray=ray) if roots else None


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
    on_new_data: Literal["restart", "continue"] = "restart"
    reprofile: bool = Field(
        False,
        description="retraining rounds: score under the current policy (the last checkpoint), drop what it "
        "mastered (the recipe's `mastered` rule), continue from it; a round also runs when only the policy changed",
    )


class AblationParams(BaseModel):
    catalog: str
    output: str
    recipes: list[str]
    scorer_key: str | None = None
    train_config: str
    nprocs: int = 1


def demo_params(out: Path) -> PipelineParams:
    """The demo's fixtures, tiny model and training config as pipeline parameters."""
    from curation.testing.demo import write_demo_inputs

    demo = write_demo_inputs(out)
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
