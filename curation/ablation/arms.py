"""What an ablation compares: arms (a recipe, optionally a difficulty band, a pool size or a scorer), each trained
with several seeds on an equal budget, all evaluated on one fixed evaluation set.

The evaluation set comes from its own recipe (``eval_recipe``), never from an arm's, so no arm changes what the
arms are measured on; each arm's pool is checked against it for leakage (a training sample on an evaluation
image, by file bytes or COCO image id).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Literal, Optional

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from curation import catalog
from curation.quality.features import COCO_NAME
from curation.quality.recipe import Recipe, load_recipe


class Arm(BaseModel):
    """One arm: ``recipe`` plus what this arm changes. ``pool_size`` fixes the arm's pool (a point of a
    data-scaling curve, nested: a smaller pool is a subset of a larger one); arms without it share the size of the
    smallest such pool."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
    recipe: str
    seeds: Optional[list[int]] = Field(None, description="default: the study's seeds")
    scorer_key: Optional[str] = Field(None, description="default: the study's scorer key")
    band: Optional[tuple[float, float]] = Field(None, description="difficulty band (min, max pass rate)")
    pool_size: Optional[int] = Field(None, gt=0)

    def effective_recipe(self) -> Recipe:
        """The recipe with this arm's band (its own quality flags: the band is part of the recipe hash)."""
        recipe = load_recipe(self.recipe)
        if self.band is None:
            return recipe
        band = recipe.selection.difficulty.model_copy(update={"min_pass_rate": self.band[0],
                                                               "max_pass_rate": self.band[1]})  # fmt: skip
        selection = recipe.selection.model_copy(update={"difficulty": band})
        return recipe.model_copy(update={"selection": selection, "name": f"{recipe.name}-band"})


class Comparison(BaseModel):
    """A pair of arms to compare; a control says what the answer must be (positive: a difference; negative: none)."""

    model_config = ConfigDict(extra="forbid")
    a: str
    b: str
    control: Optional[Literal["positive", "negative"]] = None

    def passed(self, detected: bool) -> Optional[bool]:
        if self.control is None:
            return None
        return detected if self.control == "positive" else not detected


def arms_from(recipes: list[str], arms: list[Arm], pool_sizes: list[int]) -> list[Arm]:
    """Arms given directly, or one per recipe; ``pool_sizes`` adds the first arm's recipe at each size."""
    out = list(arms) or [Arm(name=Path(r).stem, recipe=r) for r in recipes]
    if not out:
        raise ValueError("an ablation needs arms (or recipes)")
    out += [Arm(name=f"{out[0].name}@{n}", recipe=out[0].recipe, pool_size=n) for n in pool_sizes]
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique, got {names}")
    return out


def equal_pools(selections: dict[str, object], sizes: dict[str, Optional[int]]) -> dict[str, object]:
    """Arms with a pool size get it; the others are cut to the smallest pool among them."""
    from curation.selection.select import resize

    free = [name for name, n in sizes.items() if n is None]
    common = min((len(selections[name]) for name in free), default=0)
    out = {}
    for name, sel in selections.items():
        n = sizes[name]
        if n is None:
            out[name] = resize(sel, common, f"equal size across the ablation ({common})")
        else:
            if n > len(sel):
                raise ValueError(f"arm {name}: pool size {n} is larger than its {len(sel)} candidates")
            out[name] = resize(sel, n, f"pool size {n} (data-scaling arm)")
    return out


def leakage(catalog_path: str | Path, train_ids: pl.Series, eval_ids: pl.Series) -> int:
    """Training samples whose image is an evaluation image (same bytes, or the same COCO image id in its name)."""
    ids = {"_train": train_ids, "_eval": eval_ids}
    with catalog.connect(catalog_path) as con, ExitStack() as stack:
        for name, col in ids.items():
            stack.enter_context(catalog.registered(con, name, pl.DataFrame({"sample_id": col}).to_arrow()))
        n = con.execute(
            """WITH img AS (
                SELECT s.sample_id, p.sha256, regexp_extract(s.image_key, ?, 1) AS coco_id
                FROM samples s LEFT JOIN image_probes p ON p.path = s.image_path)
            SELECT count(*) FROM _train t JOIN img USING (sample_id)
            WHERE img.sha256 IN (SELECT sha256 FROM _eval JOIN img USING (sample_id) WHERE sha256 IS NOT NULL)
               OR (img.coco_id <> '' AND img.coco_id IN (SELECT coco_id FROM _eval JOIN img USING (sample_id)))""",
            [COCO_NAME],
        ).fetchall()[0][0]  # fetchall: no pending result when the views go
    return int(n)
