"""The row-at-a-time selection and shard rows that the columnar path replaced (issue 18), kept as the reference.

Tests check that ``curation.selection.select`` selects exactly what this selects, over
every selection option, and that the shards are byte-identical;
``benchmarks/shards.py`` measures both. Every row is a Python dict here, which
is why it is slow; do not use it outside tests and benchmarks.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa

from curation import catalog
from curation.quality.recipe import Recipe
from curation.selection.select import NO_DIFFICULTY, candidates
from vlmr1.prompts import build_messages
from vlmr1.shards import SHARD_SCHEMA

ROW_GROUP = 8192


def rank(seed: int, sample_id: str) -> str:
    """A sample's place in every seeded choice, as hex (``selection.candidate_frame`` computes the same sha256 in
    SQL, as bytes, which sort the same)."""
    return hashlib.sha256(f"{seed}\x1f{sample_id}".encode()).hexdigest()


def select(catalog_path, recipe: Recipe, scorer_key: str | None = None, pool: str = "train"):
    """(rows, funnel) as the row-wise code selected them."""
    s = recipe.selection
    with catalog.connect(catalog_path) as con:
        total = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        if pool == "eval":
            rows = [dict(r, **NO_DIFFICULTY) for r in candidates(con, recipe, pool="eval")]
            return rows, [("catalog", total), ("evaluation samples", len(rows))]
        rows = candidates(con, recipe)
        funnel = [("catalog", total), ("after quality drops and evaluation samples", len(rows))]
        if scorer_key is not None:
            names = list(NO_DIFFICULTY) + ["p_no_signal", "post_low", "post_high"]
            sql = f"SELECT sample_id, {', '.join(names)} FROM difficulty WHERE scorer_key = ?"
            diff = {r[0]: dict(zip(names, r[1:])) for r in con.execute(sql, [scorer_key]).fetchall()}
            rows = [dict(r, **diff[r["sample_id"]]) for r in rows if r["sample_id"] in diff]
            funnel.append((f"scored under {scorer_key}", len(rows)))
            d = s.difficulty
            rows = [r for r in rows if d.admits(r["pass_rate"], r["reward_std"], r["p_no_signal"], _width(r))]
            funnel.append((d.describe(), len(rows)))
    rows = [{k: v for k, v in r.items() if k not in ("p_no_signal", "post_low", "post_high")} for r in rows]
    rows = [dict(r, **{k: r.get(k) for k in NO_DIFFICULTY}) for r in rows]
    if s.caps:
        rows = _capped(rows, s.caps, s.seed)
        funnel.append(("per-source caps " + ", ".join(f"{k}: {v}" for k, v in sorted(s.caps.items())), len(rows)))
    size = s.pool_size or len(rows)
    if s.balance_by:
        rows = balance(rows, s.balance_by, min(size, len(rows)), s.seed)
        funnel.append((f"balanced by {s.balance_by}", len(rows)))
    rows = sorted(rows, key=lambda r: rank(s.seed, r["sample_id"]))[:size]
    funnel.append((f"pool size {s.pool_size}" if s.pool_size else "pool (no size limit)", len(rows)))
    return order(rows, s.curriculum, s.seed), funnel


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
        extra = left - share * len(open_groups)
        for i, g in enumerate(sorted(open_groups)):
            quota[g] = share + (1 if i < extra else 0)
        break
    return [r for g in sorted(groups) for r in groups[g][: quota[g]]]


def _capped(rows: list[dict], caps: dict[str, int], seed: int) -> list[dict]:
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


def equal_size(pools: list[tuple[list[dict], int]]) -> list[list[dict]]:
    """``pools``: (rows, seed) per recipe."""
    n = min(len(rows) for rows, _ in pools)
    out = []
    for rows, seed in pools:
        keep = {r["sample_id"] for r in sorted(rows, key=lambda r: rank(seed, r["sample_id"]))[:n]}
        out.append([r for r in rows if r["sample_id"] in keep])
    return out


def root_and_key(row: dict) -> tuple[str, str]:
    path, key = row.get("image_path"), row["image_key"]
    if path.endswith("/" + key):
        return path[: -len(key) - 1], key
    return str(Path(path).parent), Path(path).name


def shard_batches(rows: list[dict], roots: list[str], template: str, embed_images: bool):
    """Arrow record batches in SHARD_SCHEMA order, ROW_GROUP rows each, built one dict per row."""
    batch: list[dict] = []
    for r in rows:
        root, rel = root_and_key(r)
        if embed_images:
            with open(Path(root) / rel, "rb") as fh:
                image, image_root = {"bytes": fh.read(), "path": rel}, None
        else:
            image, image_root = {"bytes": None, "path": rel}, roots.index(root)
        messages = build_messages(r["task"], r["problem"], template)
        prompt = [
            {"role": m["role"], "content": [{"type": c["type"], "text": c.get("text")} for c in m["content"]]}
            for m in messages
        ]
        batch.append(
            {**{k: r.get(k) for k in SHARD_SCHEMA.names}, "prompt": prompt, "image": image, "image_root": image_root}
        )
        if len(batch) == ROW_GROUP:
            yield pa.RecordBatch.from_pylist(batch, schema=SHARD_SCHEMA)
            batch = []
    if batch:
        yield pa.RecordBatch.from_pylist(batch, schema=SHARD_SCHEMA)


def counts(rows: list[dict]) -> dict:
    """The manifest's ``counts`` as the row-wise writer computed them."""

    def count(key: str) -> dict:
        return dict(sorted(Counter(str(r.get(key)) for r in rows).items()))

    return {"rows": len(rows), "by_source": count("source"), "by_task": count("task"), "by_band": count("band")}


def categories(rows: list[dict]) -> Counter:
    return Counter(t["label"] for r in rows for t in json.loads(r["solution"]))


def load(path):
    """Today's ``vlmr1.shards.load`` before issue 18: the same verified table, fingerprinted by ``datasets``
    hashing all of it."""
    import datasets

    from vlmr1.shards import load_table

    table, _ = load_table(path)
    return datasets.Dataset(datasets.table.InMemoryTable(table)).cast_column("image", datasets.Image())


def image_checksums(rows: list[dict], roots: list[str], catalog_path) -> dict:
    """``images.parquet``'s columns as the row-wise writer built them: a root and key per row, a sorted set, one
    lookup of the ingest probes' sha256 by absolute path."""
    keys = sorted({root_and_key(r) for r in rows})
    absolute = [str(Path(root) / rel) for root, rel in keys]
    with catalog.connect(catalog_path) as con:
        sha = dict(
            con.execute(
                "SELECT path, sha256 FROM image_probes WHERE path IN (SELECT unnest(?))", [absolute]
            ).fetchall()
        )
    return {
        "root": [roots.index(root) for root, _ in keys],
        "path": [rel for _, rel in keys],
        "sha256": [sha.get(a) for a in absolute],
    }


def _width(row: dict):
    """The 90% posterior interval's width, None where the row has no posterior (scored before schema 6)."""
    return None if row["post_low"] is None else row["post_high"] - row["post_low"]
