"""Selection: which samples a recipe trains on, in which order. Deterministic: same catalog + recipe + scorer, same
list.

Steps, each recorded in the funnel: training candidates (quality drops and
evaluation samples removed) -> difficulty band under a scorer key -> per-
source caps -> balancing -> pool size -> order (seeded shuffle or easy to
hard). Every random choice is a sha256 of (seed, sample_id), so a sample's
fate does not depend on which other samples exist.

Columnar (issue 18): DuckDB reads the candidates, their difficulty and their
rank in one query, and every step after is a polars expression over that
frame; no Python runs per row. ``kit.rowwise`` keeps the
row-at-a-time code this replaced, and the tests hold the two to the same
samples in the same order.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

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


def fresh_quality(catalog_path: str | Path, recipe: Recipe) -> str | None:
    """Recompute a recipe's missing or stale flags (seconds at 1M samples) before it selects; what was done, as a
    note for the stage's report (None when the flags were current)."""
    from curation.quality.apply import evaluate_recipe

    with catalog.connect(catalog_path) as con:
        try:
            check_quality(con, recipe)
            return None
        except StaleQuality as exc:
            reason = str(exc).split(":")[0]
    r = evaluate_recipe(catalog_path, recipe)
    return f"{reason}: re-evaluated its quality flags: kept {r.kept} of {r.total} samples on the current catalog"


def training_candidate_count(catalog_path: str | Path, recipe: Recipe) -> int:
    with catalog.connect(catalog_path) as con:
        return candidate_frame(con, recipe, "train", columns=None).height


# DuckDB's share of memory while selecting and writing (the selection itself is a polars frame beside it).
DUCKDB_MEMORY = "640MB"
# What selection decides on: the rest of a sample's columns are read from the catalog when shards are written.
NARROW = ["sample_id", "source", "task", "split"]
# What a finished selection keeps (at 10M rows every column is half a gigabyte the shard writer could use).
KEPT = ["sample_id", "source", "task", "pass_rate", "reward_std", "band", "n_pass", "k"]


def candidate_frame(
    con: duckdb.DuckDBPyConnection,
    recipe: Recipe,
    pool: str = "train",
    scorer_key: str | None = None,
    columns: list[str] | None = NARROW,
    order_by: str = "sample_id",
    posterior: bool = False,
) -> pl.DataFrame:
    """Samples the recipe keeps that may be trained on (not eval-only, not in an evaluation split), by sample id:
    their ``columns`` (None: all), ``rank`` under the recipe's seed (sha256 bytes), and the difficulty columns
    under ``scorer_key`` (null when there is none, or the sample is unscored; ``scored`` says which), sorted by
    ``order_by`` (``rank``: DuckDB sorts, spilling to disk if it must).

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
    wanted = "s.* EXCLUDE (attributes, category_ids)" if columns is None else ", ".join(f"s.{c}" for c in columns)
    diff = ", ".join([f"d.{k}" for k in NO_DIFFICULTY] + (POSTERIOR if posterior else []))
    query = f"""
        SELECT {wanted}, {diff}, d.sample_id IS NOT NULL AS scored,
            unhex(sha256(CAST(? AS VARCHAR) || chr(31) || s.sample_id)) AS rank
        FROM samples s LEFT JOIN (SELECT * FROM difficulty WHERE scorer_key = ?) d USING (sample_id)
        WHERE {where} ORDER BY {order_by}"""
    table = catalog.frame(con, query, [recipe.selection.seed, scorer_key or "", *args])
    return table.set_sorted(order_by) if table.height else table


def candidates(con: duckdb.DuckDBPyConnection, recipe: Recipe, pool: str = "train") -> list[dict]:
    """The candidates' sample columns as dicts, by sample id: what the scorer plans partitions of."""
    frame = candidate_frame(con, recipe, pool, columns=None)
    return frame.drop("rank", "scored", *NO_DIFFICULTY).to_dicts()


def ranks(sample_ids: pl.Series, seed: int) -> pl.Series:
    """``rank`` of each id, in order, as the sha256 bytes ``candidate_frame`` computes (DuckDB, no Python per id)."""
    query = "SELECT unhex(sha256(CAST(? AS VARCHAR) || chr(31) || sample_id)) AS rank FROM _ids"
    with duckdb.connect() as con, catalog.registered(con, "_ids", sample_ids.to_frame("sample_id")):
        return catalog.frame(con, query, [seed])["rank"]


@dataclass
class Selection:
    """The selected samples in training order: a narrow polars frame (``KEPT``) of a catalog's samples, and the
    funnel. ``ordered`` and ``stream`` read the other columns."""

    recipe: Recipe
    scorer_key: str | None
    table: pl.DataFrame
    funnel: list[tuple[str, int]]
    catalog_path: Path

    def __len__(self) -> int:
        return self.table.height

    @property
    def rows(self) -> list[dict]:
        """Every column of every row as dicts: for tests and small pools (a dict per row is what the columnar
        path avoids)."""
        with ordered(self) as con:
            return [r for batch in stream(con, self) for r in pl.from_arrow(batch).to_dicts()]

    def report(self) -> StageReport:
        counts = {
            "recipe": self.recipe.name,
            "recipe_hash": self.recipe.hash,
            "scorer": self.scorer_key,
            "selected": len(self),
        }
        return StageReport("select", f"selection: {self.recipe.name}", counts, funnel=list(self.funnel))


@contextmanager
def ordered(selection: Selection, memory_limit: str = DUCKDB_MEMORY) -> Iterator[duckdb.DuckDBPyConnection]:
    """The selection's catalog with ``_order`` registered (sample_id, ``_pos`` in training order): queries join it
    to ``samples`` for the wide columns. DuckDB's memory is capped so its sorts spill to disk rather than hold 10M
    wide rows."""
    with catalog.connect(selection.catalog_path, memory_limit=memory_limit) as con:
        order = selection.table.select("sample_id").with_row_index("_pos")
        with catalog.registered(con, "_order", order):
            yield con


def stream(
    con: duckdb.DuckDBPyConnection,
    selection: Selection,
    columns: list[str] | None = None,
    derived: list[str] | None = None,
    params: list | None = None,
    chunk: int = 1 << 17,
) -> Iterator[pa.RecordBatch]:
    """The selected rows in order (``con`` from ``ordered``), Arrow batches of about ``chunk`` rows: ``columns`` of
    ``samples`` (None: all), then ``derived`` SQL expressions over them (with ``params``; computed after the sort,
    so the sort moves only stored columns), then the difficulty columns from the selection. A batch out of order
    is refused: the order is the one thing a shard must not get wrong."""
    wanted = "s.* EXCLUDE (attributes, category_ids)" if columns is None else ", ".join(f"s.{c}" for c in columns)
    outer = ", ".join(["s.* EXCLUDE (_pos)", *(derived or [])])
    query = f"""SELECT s._pos, {outer} FROM (
        SELECT o._pos, {wanted} FROM _order o JOIN samples s USING (sample_id) ORDER BY o._pos
    ) s"""
    con.abort()
    offset = 0
    for batch in con.sql(query, params=params).to_arrow_reader(chunk):
        if not np.array_equal(batch.column("_pos").to_numpy(), np.arange(offset, offset + len(batch))):
            raise RuntimeError("DuckDB returned the selection out of order")
        difficulty = selection.table.slice(offset, len(batch)).select(list(NO_DIFFICULTY)).to_arrow()
        offset += len(batch)
        arrays = batch.columns[1:] + [c.combine_chunks() for c in difficulty.columns]
        yield pa.RecordBatch.from_arrays(arrays, names=batch.schema.names[1:] + difficulty.column_names)


_BUCKETS = {0: "0.00-0.25", 1: "0.25-0.50", 2: "0.50-0.75", 3: "0.75-1.00"}


def solution_labels(table: pl.DataFrame) -> pl.Series:
    """Every row's solution labels (the categories or the expression), in row order. DuckDB parses the JSON
    column: 8x faster than polars' ``json_decode`` here."""
    query = "SELECT json_extract_string(solution, '$[*].label') AS labels FROM _solutions"
    with duckdb.connect() as con, catalog.registered(con, "_solutions", table.select("solution")):
        return catalog.frame(con, query)["labels"]


def group_key(table: pl.DataFrame, key: str) -> pl.Expr:
    """The balancing group of each row as a string: a column's value (``None`` when null), the pass-rate quarter
    (``unscored``), or the solution's first label in code-point order (``(none)``)."""
    if key == "difficulty_bucket":
        quarter = pl.min_horizontal((pl.col("pass_rate") * 4).floor(), pl.lit(3.0)).cast(pl.Int64)
        bucket = quarter.replace_strict(_BUCKETS, return_dtype=pl.String)
        return pl.when(pl.col("pass_rate").is_null()).then(pl.lit("unscored")).otherwise(bucket)
    if key == "category":
        return pl.lit(solution_labels(table).list.min().fill_null("(none)"))
    return pl.col(key).cast(pl.String).fill_null("None")


def quotas(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Equal shares of ``total`` per group; a group smaller than its share gives the rest to the others (water
    filling); the remainder goes to the groups first in name order."""
    quota, left, open_groups = {}, total, sorted(sizes, key=sizes.__getitem__)
    while open_groups:
        share = left // len(open_groups)
        g = open_groups[0]
        if sizes[g] <= share:
            quota[g] = sizes[g]
            left -= quota[g]
            open_groups.pop(0)
            continue
        extra = left - share * len(open_groups)
        for i, g in enumerate(sorted(open_groups)):
            quota[g] = share + (1 if i < extra else 0)
        break
    return quota


def balance(table: pl.DataFrame, key: str, total: int) -> pl.DataFrame:
    """``quotas`` per group of ``key``, each group's lowest ranks kept; ``table`` is in rank order."""
    if table.is_empty():
        return table
    table = table.with_columns(group_key(table, key).alias("_group"))
    quota = quotas(dict(table.group_by("_group").len().iter_rows()), total)
    allowed = pl.col("_group").replace_strict(quota, return_dtype=pl.Int64)
    return table.filter(pl.int_range(pl.len()).over("_group") < allowed).drop("_group")


def select(catalog_path: str | Path, recipe: Recipe, scorer_key: str | None = None, pool: str = "train") -> Selection:
    """``pool="eval"`` selects the evaluation samples (evaluation splits, eval-only pools) unfiltered, for
    ``training.evaluate``."""
    s = recipe.selection
    table, funnel = _candidates(Path(catalog_path), recipe, scorer_key, pool)
    if pool == "eval":
        return Selection(recipe, None, table.select(KEPT), funnel, Path(catalog_path))
    if s.caps:
        cap = pl.col("source").replace_strict(s.caps, default=None, return_dtype=pl.Int64)
        table = table.filter(cap.is_null() | (pl.int_range(pl.len()).over("source") < cap))
        funnel.append(("per-source caps " + ", ".join(f"{k}: {v}" for k, v in sorted(s.caps.items())), table.height))
    size = s.pool_size or table.height
    if s.balance_by:
        table = balance(table, s.balance_by, min(size, table.height))
        funnel.append((f"balanced by {s.balance_by}", table.height))
    table = table.head(size)
    funnel.append((f"pool size {s.pool_size}" if s.pool_size else "pool (no size limit)", table.height))
    table = order(table, s.curriculum).select(KEPT)  # what the shards need beside the catalog
    pa.default_memory_pool().release_unused()  # the Arrow batches the frame was built from
    return Selection(recipe, scorer_key, table, funnel, Path(catalog_path))


def _candidates(
    catalog_path: Path, recipe: Recipe, scorer_key: str | None, pool: str
) -> tuple[pl.DataFrame, list[tuple[str, int]]]:
    """The candidates in rank order (evaluation pool: by sample id), in the difficulty band when a scorer is given,
    and the funnel so far."""
    s = recipe.selection
    with catalog.connect(catalog_path, memory_limit=DUCKDB_MEMORY) as con:
        total = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        if pool == "eval":
            table = candidate_frame(con, recipe, pool, None)
            return table.drop("scored"), [("catalog", total), ("evaluation samples", table.height)]
        if scorer_key is not None:
            if not con.execute("SELECT 1 FROM scorers WHERE scorer_key = ?", [scorer_key]).fetchone():
                raise ValueError(f"no scorer {scorer_key!r} in {catalog_path}; run `vlmr1 score` first")
        columns = NARROW + (["solution"] if s.balance_by == "category" else [])
        bounded = s.difficulty.max_no_signal is not None or s.difficulty.max_interval is not None
        table = candidate_frame(con, recipe, pool, scorer_key, columns, order_by="rank", posterior=bounded)
    funnel = [("catalog", total), ("after quality drops and evaluation samples", table.height)]
    if scorer_key is not None:
        kept = pl.col("scored") & _admits(s.difficulty)
        scored, admitted = table.select(pl.col("scored").sum(), kept.sum().alias("kept")).row(0)
        table = table.filter(kept)  # one copy of the frame for both steps
        funnel += [(f"scored under {scorer_key}", scored), (s.difficulty.describe(), admitted)]
    return table.drop("scored", *(c for c in POSTERIOR_NAMES if c in table.columns)), funnel


NO_DIFFICULTY = {"pass_rate": None, "reward_std": None, "band": None, "n_pass": None, "k": None}
# read only when the difficulty filter bounds them (``candidate_frame(posterior=True)``), never written to shards
POSTERIOR = ["d.p_no_signal", "d.post_high - d.post_low AS post_interval"]
POSTERIOR_NAMES = ["p_no_signal", "post_interval"]


def _admits(d) -> pl.Expr:
    """``Difficulty.admits`` as an expression (NaN admits nothing, as in Python's comparisons)."""
    rate, std = pl.col("pass_rate").fill_nan(None), pl.col("reward_std").fill_nan(None)
    admitted = rate.is_between(d.min_pass_rate, d.max_pass_rate).fill_null(False)
    for column, bound in (("p_no_signal", d.max_no_signal), ("post_interval", d.max_interval)):
        if bound is not None:
            admitted = admitted & (pl.col(column).fill_nan(None) <= bound).fill_null(False)
    return admitted & (std > 0).fill_null(False) if d.require_signal else admitted


def order(table: pl.DataFrame, curriculum: str) -> pl.DataFrame:
    """Seeded shuffle (by rank), or easy to hard (pass rate descending, unscored last, ties by rank)."""
    if curriculum == "easy_to_hard":
        return table.sort([pl.col("pass_rate").fill_null(-1.0), pl.col("rank")], descending=[True, False])
    return table.sort("rank")


def resize(selection: Selection, n: int, why: str) -> Selection:
    """``selection`` down to ``n`` samples by its seeded rank, training order kept: the same seed gives nested
    pools."""
    seeded = ranks(selection.table["sample_id"], selection.recipe.selection.seed)
    table = selection.table.filter(seeded.rank("ordinal") <= n)
    return Selection(selection.recipe, selection.scorer_key, table, selection.funnel + [(why, table.height)],
                     selection.catalog_path)  # fmt: skip


def equal_size(selections: list[Selection]) -> list[Selection]:
    """Downsample every pool of an ablation to the smallest (seeded, order kept) so quality is not confounded with
    quantity."""
    n = min(len(sel) for sel in selections)
    return [resize(sel, n, f"equal size across the ablation ({n})") for sel in selections]
