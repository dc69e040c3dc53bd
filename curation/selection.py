"""Selection: which samples a recipe trains on, in which order. Deterministic: same catalog + recipe + scorer, same
list.

Steps, each recorded in the funnel: training candidates (quality drops and
evaluation samples removed) -> difficulty band under a scorer key -> per-
source caps -> balancing -> pool size -> order (seeded shuffle or easy to
hard). Every random choice is a sha256 of (seed, sample_id), so a sample's
fate does not depend on which other samples exist.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from curation import catalog
from curation.quality import features
from curation.quality.recipe import Recipe
from vlmr1.report import StageReport


class StaleQuality(RuntimeError):
    """A recipe's quality flags are missing, or were computed on another catalog state than the current one."""


def check_quality(con: duckdb.DuckDBPyConnection, recipe: Recipe) -> None:
    """Raise ``StaleQuality`` unless ``recipe``'s flags were computed on the catalog as it is now.

    Flags never get recomputed behind a caller's back: an ingest after ``vlmr1 quality`` adds samples the
    recipe never looked at, and they would otherwise reach scoring and shards unfiltered.
    """
    row = con.execute("SELECT sources_sha256 FROM recipes WHERE recipe_hash = ?", [recipe.hash]).fetchone()
    now = catalog.sources_sha256(con)
    catalog_path = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()[0]
    if row is None:
        raise StaleQuality(
            f"recipe {recipe.name!r} ({recipe.hash}) has no quality flags in {catalog_path}; "
            f"run `vlmr1 quality {recipe.name} --catalog {catalog_path}` first"
        )
    if row[0] != now:
        raise StaleQuality(
            f"recipe {recipe.name!r} ({recipe.hash}) was evaluated on catalog snapshot {str(row[0])[:12]}, "
            f"the catalog {catalog_path} is now at {now[:12]}: re-run `vlmr1 quality {recipe.name}`"
        )


def candidates(con: duckdb.DuckDBPyConnection, recipe: Recipe, pool: str = "train") -> list[dict]:
    """Samples the recipe keeps that may be trained on (not eval-only, not in an evaluation split), by sample id.

    ``pool="eval"``: the evaluation samples instead, all of them (benchmarks are not filtered by quality rules).
    Training candidates need the recipe's flags to be current (``check_quality``).
    """
    in_eval = features.eval_predicate("s", recipe.eval_splits)
    if pool == "eval":
        where, args = f"({in_eval})", []
    else:
        check_quality(con, recipe)
        dropped = "SELECT sample_id FROM quality_flags WHERE recipe_hash = ? AND action = 'drop'"
        where, args = f"NOT ({in_eval}) AND s.sample_id NOT IN ({dropped})", [recipe.hash]
    rows = con.execute(
        f"SELECT s.* EXCLUDE (attributes, category_ids) FROM samples s WHERE {where} ORDER BY s.sample_id", args
    )
    columns = [d[0] for d in rows.description]
    return [dict(zip(columns, r)) for r in rows.fetchall()]


def rank(seed: int, sample_id: str) -> str:
    return hashlib.sha256(f"{seed}\x1f{sample_id}".encode()).hexdigest()


@dataclass
class Selection:
    recipe: Recipe
    scorer_key: str | None
    rows: list[dict]
    funnel: list[tuple[str, int]] = field(default_factory=list)

    def report(self) -> StageReport:
        counts = {
            "recipe": self.recipe.name,
            "recipe_hash": self.recipe.hash,
            "scorer": self.scorer_key,
            "selected": len(self.rows),
        }
        return StageReport("select", f"selection: {self.recipe.name}", counts, funnel=list(self.funnel))


def _group(row: dict, key: str) -> str:
    if key == "difficulty_bucket":
        rate = row.get("pass_rate")
        return (
            "unscored" if rate is None else f"{min(int(rate * 4), 3) / 4:.2f}-{min(int(rate * 4), 3) / 4 + 0.25:.2f}"
        )
    if key == "category":
        labels = sorted({t["label"] for t in json.loads(row["solution"])})
        return labels[0] if labels else "(none)"
    return str(row.get(key))


def balance(rows: list[dict], key: str, total: int, seed: int) -> list[dict]:
    """Equal shares per group of ``key``; a group smaller than its share gives the rest to the others (water
    filling)."""
    groups: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: rank(seed, r["sample_id"])):
        groups.setdefault(_group(r, key), []).append(r)
    quota, left, open_groups = {}, total, sorted(groups, key=lambda g: len(groups[g]))
    while open_groups:
        share = left // len(open_groups)
        g = open_groups[0]
        if len(groups[g]) <= share:
            quota[g] = len(groups[g])
            left -= quota[g]
            open_groups.pop(0)
            continue
        extra = left - share * len(open_groups)  # the remainder goes to the groups first in name order
        for i, g in enumerate(sorted(open_groups)):
            quota[g] = share + (1 if i < extra else 0)
        break
    return [r for g in sorted(groups) for r in groups[g][: quota[g]]]


def select(catalog_path: str | Path, recipe: Recipe, scorer_key: str | None = None, pool: str = "train") -> Selection:
    """``pool="eval"`` selects the evaluation samples (evaluation splits, eval-only pools) unfiltered, for
    ``training.evaluate``."""
    s = recipe.selection
    with catalog.connect(catalog_path) as con:
        total = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        if pool == "eval":
            rows = [dict(r, **NO_DIFFICULTY) for r in candidates(con, recipe, pool="eval")]
            return Selection(recipe, None, rows, [("catalog", total), ("evaluation samples", len(rows))])
        rows = candidates(con, recipe)
        funnel = [("catalog", total), ("after quality drops and evaluation samples", len(rows))]
        if scorer_key is not None:
            rows = _with_difficulty(con, rows, scorer_key, str(catalog_path))
            funnel.append((f"scored under {scorer_key}", len(rows)))
            d = s.difficulty
            rows = [r for r in rows if d.admits(r["pass_rate"], r["reward_std"])]
            funnel.append((d.describe(), len(rows)))
    rows = [dict(r, **{k: r.get(k) for k in NO_DIFFICULTY}) for r in rows]
    if s.caps:
        rows = _capped(rows, s.caps, s.seed)
        funnel.append(("per-source caps " + ", ".join(f"{k}: {v}" for k, v in sorted(s.caps.items())), len(rows)))
    pool = s.pool_size or len(rows)
    if s.balance_by:
        rows = balance(rows, s.balance_by, min(pool, len(rows)), s.seed)
        funnel.append((f"balanced by {s.balance_by}", len(rows)))
    rows = sorted(rows, key=lambda r: rank(s.seed, r["sample_id"]))[:pool]
    funnel.append((f"pool size {s.pool_size}" if s.pool_size else "pool (no size limit)", len(rows)))
    return Selection(recipe, scorer_key, order(rows, s.curriculum, s.seed), funnel)


NO_DIFFICULTY = {"pass_rate": None, "reward_std": None, "band": None, "n_pass": None, "k": None}


def _with_difficulty(con: duckdb.DuckDBPyConnection, rows: list[dict], scorer_key: str, where: str) -> list[dict]:
    """The rows scored under ``scorer_key``, with their difficulty columns."""
    if not con.execute("SELECT 1 FROM scorers WHERE scorer_key = ?", [scorer_key]).fetchone():
        raise ValueError(f"no scorer {scorer_key!r} in {where}; run `vlmr1 score` first")
    names = list(NO_DIFFICULTY)
    sql = f"SELECT sample_id, {', '.join(names)} FROM difficulty WHERE scorer_key = ?"
    diff = {r[0]: dict(zip(names, r[1:])) for r in con.execute(sql, [scorer_key]).fetchall()}
    return [dict(r, **diff[r["sample_id"]]) for r in rows if r["sample_id"] in diff]


def _capped(rows: list[dict], caps: dict[str, int], seed: int) -> list[dict]:
    """At most ``caps[source]`` rows of each capped source, chosen by the seeded rank."""
    kept, seen = [], {}
    for r in sorted(rows, key=lambda r: rank(seed, r["sample_id"])):
        seen[r["source"]] = seen.get(r["source"], 0) + 1
        if caps.get(r["source"]) is None or seen[r["source"]] <= caps[r["source"]]:
            kept.append(r)
    return kept


def order(rows: list[dict], curriculum: str, seed: int) -> list[dict]:
    if curriculum == "easy_to_hard":
        return sorted(
            rows, key=lambda r: (-(r["pass_rate"] if r["pass_rate"] is not None else -1.0), rank(seed, r["sample_id"]))
        )
    return sorted(rows, key=lambda r: rank(seed, r["sample_id"]))


def equal_size(selections: list[Selection]) -> list[Selection]:
    """Downsample every pool of an ablation to the smallest (seeded, order kept) so quality is not confounded with
    quantity."""
    n = min(len(sel.rows) for sel in selections)
    out = []
    for sel in selections:
        seed = sel.recipe.selection.seed
        keep = {r["sample_id"] for r in sorted(sel.rows, key=lambda r: rank(seed, r["sample_id"]))[:n]}
        rows = [r for r in sel.rows if r["sample_id"] in keep]
        out.append(
            Selection(
                sel.recipe, sel.scorer_key, rows, sel.funnel + [(f"equal size across the ablation ({n})", len(rows))]
            )
        )
    return out
