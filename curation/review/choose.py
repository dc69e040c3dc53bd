"""Which samples to review: a built-in rule's, a recipe's flags, or a predicate over ``sample_features``.

A rule or a predicate runs in the recipe sandbox (``curation.quality.sandbox``): a colleague's query is as
untrusted as a colleague's recipe. Worst first: by label-quality score under the chosen scorer, then sample id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from curation import catalog
from curation.quality import features
from curation.quality.recipe import Recipe
from curation.quality.rules import BUILTIN, render
from curation.quality.sandbox import check_predicate, sandbox


@dataclass(frozen=True)
class Choice:
    """Exactly one of: a built-in rule (its default parameters), a recipe (its flags), a predicate."""

    rule: str | None = None
    recipe: Recipe | None = None
    where: str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.rule, self.recipe, self.where)) != 1:
            raise ValueError("review: give exactly one of a rule, --recipe or --where")
        if self.rule is not None and self.rule not in BUILTIN:
            raise ValueError(f"review: unknown rule {self.rule!r}; built-in rules: {', '.join(sorted(BUILTIN))}")
        if self.where is not None:
            check_predicate(self.where)

    def describe(self) -> str:
        if self.rule:
            return f"rule {self.rule}"
        return f"recipe {self.recipe.name}" if self.recipe else f"where {self.where}"


def chosen(catalog_path: str | Path, choice: Choice, scorer: str | None) -> list[tuple[str, str]]:
    """(sample_id, what fired) of every chosen sample, worst first."""
    if choice.recipe is not None:
        from curation.selection.select import fresh_quality

        fresh_quality(catalog_path, choice.recipe)
        with catalog.connect(catalog_path) as con:
            fired = dict(con.execute(
                "SELECT sample_id, string_agg(rule || ' (' || action || ')', ', ' ORDER BY rule) FROM quality_flags "
                "WHERE recipe_hash = ? GROUP BY sample_id", [choice.recipe.hash]).fetchall())  # fmt: skip
    else:
        spec = BUILTIN[choice.rule] if choice.rule else None
        predicate = render(spec.sql, spec.params) if spec else choice.where
        with catalog.connect(catalog_path) as con:
            features.compute(con)
            box = sandbox(con.sql("SELECT * FROM sample_features").to_arrow_table())
        try:
            ids = box.sql(f"SELECT sample_id FROM sample_features WHERE coalesce(({predicate}), false)").fetchall()
        finally:
            box.close()
        fired = {sid: choice.describe() for (sid,) in ids}
    return _worst_first(catalog_path, fired, scorer)


def _worst_first(catalog_path, fired: dict[str, str], scorer: str | None) -> list[tuple[str, str]]:
    scores: dict[str, float] = {}
    if scorer and fired:
        with catalog.read_only(catalog_path) as con:
            scores = dict(con.execute(
                "SELECT sample_id, score FROM label_quality WHERE scorer_key = ? AND score IS NOT NULL",
                [scorer]).fetchall())  # fmt: skip
    order = sorted(fired, key=lambda sid: (-scores.get(sid, -1.0), sid))
    return [(sid, fired[sid]) for sid in order]
