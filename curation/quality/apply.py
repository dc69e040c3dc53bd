"""Evaluate a recipe on a catalog: features, one flag set per rule, the funnel, stored flags.

Rules are checked against the feature columns before any work (an invalid
predicate fails with the rule's name and DuckDB's message). Flags are
stored under the recipe hash: re-running a recipe replaces its own flags
and nothing else, so recipes in an ablation never see each other.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from curation import catalog
from curation.quality import features
from curation.quality.recipe import Recipe
from curation.quality.sandbox import PredicateError, check_predicate, sandbox
from vlmr1.report import StageReport


class RuleError(ValueError):
    """A rule's SQL does not run over sample_features."""


@dataclass
class FunnelRow:
    rule: str
    action: str
    flagged: int
    unique: int  # flagged by this rule and by no other rule of the recipe
    kept_after: int  # samples left after this and every earlier drop rule


@dataclass
class QualityResult:
    recipe: Recipe
    recipe_hash: str
    total: int
    eval_samples: int
    funnel: list[FunnelRow]
    kept: int
    seconds_features: dict[str, float] = field(default_factory=dict)
    seconds_rules: dict[str, float] = field(default_factory=dict)

    def folder_name(self) -> str:
        """Its report folder's name: recipe name and hash."""
        return f"{self.recipe.name}-{self.recipe_hash}"

    def report(self) -> StageReport:
        funnel = [
            {
                "rule": f.rule,
                "action": f.action,
                "flagged": f.flagged,
                "unique to rule": f.unique,
                "kept after": f.kept_after,
            }
            for f in self.funnel
        ]
        counts = {
            "recipe": self.recipe.name,
            "recipe_hash": self.recipe_hash,
            "samples": self.total,
            "evaluation samples": self.eval_samples,
            "kept": self.kept,
        }
        timings = {**self.seconds_features, **{f"rule {k}": v for k, v in self.seconds_rules.items()}}
        title = f"quality funnel: {self.recipe.name} ({self.recipe_hash}), {self.total} samples"
        note = f"kept {self.kept} of {self.total} ({self.eval_samples} evaluation samples are never trained on)"
        return StageReport("quality", title, counts, tables={"funnel": funnel}, timings=timings, notes=[note])


def check_rules(con: duckdb.DuckDBPyConnection, recipe: Recipe) -> None:
    """Parse every predicate, then run it in the sandbox over an empty sample_features; RuleError names the first
    that fails."""
    features.compute(con, eval_splits=tuple(recipe.eval_splits), near_dup_max=recipe.near_dup_max(), empty=True)
    box = sandbox(con.sql("SELECT * FROM sample_features").to_arrow_table())
    try:
        for name, sql, _ in recipe.resolved():
            try:
                check_predicate(sql)
                box.execute(f"SELECT count(*) FROM sample_features WHERE coalesce(({sql}), false)")
            except (PredicateError, duckdb.Error) as exc:
                raise RuleError(f"rule {name!r} of recipe {recipe.name!r}: {sql!r} is refused: {exc}") from None
    finally:
        box.close()


def _flags(con: duckdb.DuckDBPyConnection, recipe: Recipe, rule_seconds: dict[str, float]) -> None:
    """``_flags`` on the catalog connection: each rule's predicate evaluated in the sandbox, ids brought back."""
    box = sandbox(con.sql("SELECT * FROM sample_features").to_arrow_table())
    parts = []
    try:
        for i, (name, sql, action) in enumerate(recipe.resolved()):
            t0 = time.perf_counter()
            query = f"SELECT sample_id FROM sample_features WHERE coalesce(({sql}), false)"
            ids = box.sql(query).to_arrow_table().column("sample_id")
            n = len(ids)
            parts.append(pa.table({"sample_id": ids, "rule": [name] * n, "action": [action] * n, "ord": [i] * n}))
            rule_seconds[name] = time.perf_counter() - t0
    finally:
        box.close()
    schema = pa.schema(
        [("sample_id", pa.string()), ("rule", pa.string()), ("action", pa.string()), ("ord", pa.int32())]
    )
    table = pa.concat_tables([t.cast(schema) for t in parts]) if parts else schema.empty_table()
    with catalog.registered(con, "_new_flags", table):
        con.execute("CREATE OR REPLACE TEMP TABLE _flags AS SELECT * FROM _new_flags")


def evaluate_recipe(catalog_path: str | Path, recipe: Recipe) -> QualityResult:
    """Flag every sample by every rule of ``recipe``; store the flags with the catalog state they were computed on."""
    result_timings: dict[str, float] = {}
    rule_seconds: dict[str, float] = {}
    h = recipe.hash
    with catalog.connect(catalog_path) as con:
        check_rules(con, recipe)
        features.compute(
            con, eval_splits=tuple(recipe.eval_splits), near_dup_max=recipe.near_dup_max(), timings=result_timings
        )
        _flags(con, recipe, rule_seconds)
        total, n_eval = con.execute("SELECT count(*), count(*) FILTER (WHERE is_eval) FROM sample_features").fetchone()
        with catalog.transaction(con):
            con.execute("DELETE FROM quality_flags WHERE recipe_hash = ?", [h])
            con.execute("INSERT INTO quality_flags SELECT sample_id, rule, ?, action FROM _flags", [h])
            con.execute("DELETE FROM recipes WHERE recipe_hash = ?", [h])
            con.execute(
                "INSERT INTO recipes (recipe_hash, name, content, sources_sha256) VALUES (?, ?, ?, ?)",
                [h, recipe.name, json.dumps(recipe.canonical(), sort_keys=True), catalog.sources_sha256(con)],
            )
        funnel = _funnel(con, recipe, total)
    kept = funnel[-1].kept_after if funnel else total
    return QualityResult(recipe, h, total, n_eval, funnel, kept, result_timings, rule_seconds)


def _funnel(con: duckdb.DuckDBPyConnection, recipe: Recipe, total: int) -> list[FunnelRow]:
    stats = {
        r: (f, u)
        for r, f, u in con.execute("""
        WITH per_sample AS (SELECT sample_id, count(DISTINCT rule) AS n FROM _flags GROUP BY sample_id)
        SELECT f.rule, count(DISTINCT f.sample_id), count(DISTINCT f.sample_id) FILTER (WHERE p.n = 1)
        FROM _flags f JOIN per_sample p USING (sample_id) GROUP BY f.rule""").fetchall()
    }
    dropped_by = dict(
        con.execute(
            "SELECT ord, count(DISTINCT sample_id) FROM (SELECT sample_id, min(ord) AS ord FROM _flags "
            "WHERE action = 'drop' GROUP BY sample_id) GROUP BY ord"
        ).fetchall()
    )
    rows, kept = [], total
    for i, (name, _, action) in enumerate(recipe.resolved()):
        kept -= dropped_by.get(i, 0)
        flagged, unique = stats.get(name, (0, 0))
        rows.append(FunnelRow(name, action, flagged, unique, kept))
    return rows


def flagged_ids(catalog_path: str | Path, recipe_hash: str, rule: str | None = None) -> set[str]:
    with catalog.connect(catalog_path) as con:
        sql = "SELECT sample_id FROM quality_flags WHERE recipe_hash = ?" + (" AND rule = ?" if rule else "")
        return {r[0] for r in con.execute(sql, [recipe_hash] + ([rule] if rule else [])).fetchall()}


@dataclass
class RecipeDiff:
    a: QualityResult
    b: QualityResult
    only_a_drops: dict[str, int]  # rule of A -> samples A drops and B keeps
    only_b_drops: dict[str, int]
    examples: list[tuple[str, str, str]]  # (sample_id, which recipe drops it, by which rules)


def diff(catalog_path: str | Path, a: Recipe, b: Recipe, n_examples: int = 20) -> RecipeDiff:
    """Samples the two recipes disagree on (one drops, the other keeps), by the rules that drop them."""
    ra, rb = evaluate_recipe(catalog_path, a), evaluate_recipe(catalog_path, b)
    with catalog.connect(catalog_path) as con:

        def only(x: str, y: str) -> dict[str, int]:
            return dict(
                con.execute(
                    """SELECT rule, count(*) FROM quality_flags WHERE recipe_hash = ? AND action = 'drop'
                AND sample_id NOT IN (SELECT sample_id FROM quality_flags WHERE recipe_hash = ? AND action = 'drop')
                GROUP BY rule ORDER BY 2 DESC""",
                    [x, y],
                ).fetchall()
            )

        examples = con.execute(
            """
            WITH da AS
            (SELECT sample_id, string_agg(rule, ', ' ORDER BY rule) AS rules FROM quality_flags
                WHERE recipe_hash = ? AND action = 'drop' GROUP BY 1),
                 db AS (SELECT sample_id, string_agg(rule, ', ' ORDER BY rule) AS rules FROM quality_flags
                WHERE recipe_hash = ? AND action = 'drop' GROUP BY 1)
            SELECT coalesce(da.sample_id, db.sample_id), CASE WHEN da.sample_id IS NULL THEN ? ELSE ? END,
            coalesce(da.rules, db.rules)
            FROM da FULL JOIN db USING (sample_id) WHERE da.sample_id IS NULL OR db.sample_id IS NULL ORDER BY 1 LIMIT
            ?""",
            [ra.recipe_hash, rb.recipe_hash, b.name, a.name, n_examples],
        ).fetchall()
        return RecipeDiff(ra, rb, only(ra.recipe_hash, rb.recipe_hash), only(rb.recipe_hash, ra.recipe_hash), examples)
