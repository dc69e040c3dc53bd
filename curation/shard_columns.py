"""A selection's rows as shard columns (``SHARD_SCHEMA``), built column by column: image locations, prompts, the
Arrow record batches the writer cuts into shards.

Nothing here runs Python per row except reading image bytes for embedded
shards: a prompt is the template's text before the problem, the problem, and
the text after it (``PromptTemplate.around``), and an image's root and
relative path come from string operations on ``image_path``. The values are
exactly those of the row-wise code (``curation.testing.rowwise``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from curation import catalog
from curation.selection import NO_DIFFICULTY
from vlmr1.prompts import WHITESPACE, get_template
from vlmr1.shards import SHARD_SCHEMA

ROW_GROUP = 8192
CHUNK = 16 * ROW_GROUP  # rows read and turned into Arrow at once: bounds memory at 10M rows (a prompt is ~400 B)
TASKS = ("rec", "ovd")


def with_locations(table: pl.DataFrame) -> pl.DataFrame:
    """``table`` with ``_root`` and ``_rel``: the image root and the path inside it (``image_key`` when
    ``image_path`` ends with it, else the file's folder and name), and ``_abs``, the path they join to."""
    path, key = pl.col("image_path"), pl.col("image_key")
    keyed = path.str.ends_with(pl.lit("/") + key) & (path.str.len_bytes() > key.str.len_bytes() + 1)
    table = table.with_columns(
        pl.when(keyed).then(path.str.head(path.str.len_chars() - key.str.len_chars() - 1)).alias("_root"),
        pl.when(keyed).then(key).alias("_rel"),
    )
    odd = table.filter(pl.col("_root").is_null()).select("image_path").unique()["image_path"].to_list()
    if odd:  # paths not ending in their key (or at the filesystem root): the row-wise rule, once per path
        split = pl.DataFrame(
            {"image_path": odd, "_r": [str(Path(p).parent) for p in odd], "_n": [Path(p).name for p in odd]}
        )
        table = table.join(split, on="image_path", how="left", maintain_order="left").with_columns(
            pl.col("_root").fill_null(pl.col("_r")), pl.col("_rel").fill_null(pl.col("_n"))
        )
        table = table.drop("_r", "_n")
    prefixes = {r: _prefix(r) for r in table["_root"].unique().to_list()}
    prefix = pl.col("_root").replace_strict(prefixes, return_dtype=pl.String)
    return table.with_columns((prefix + pl.col("_rel")).alias("_abs"))


def image_table(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every image the selection (``selection.ordered``) points at, once: its root, relative path, absolute path
    and the sha256 its ingest probe recorded. ValueError names the first sample with no image file."""
    con.abort()
    missing = con.execute(
        "SELECT o.sample_id FROM _order o JOIN samples s USING (sample_id) WHERE s.image_path IS NULL "
        "ORDER BY o._pos LIMIT 1"
    ).fetchall()
    if missing:
        raise ValueError(f"sample {missing[0][0]} has no image file: ingest its source with --images before sharding")
    pairs = catalog.frame(
        con, "SELECT DISTINCT s.image_path, s.image_key FROM _order o JOIN samples s USING (sample_id)"
    )
    located = with_locations(pairs).unique(["_root", "_rel"]).sort("_root", "_rel")
    with catalog.registered(con, "_images", located.select("_abs")):
        sha = catalog.frame(
            con, "SELECT path AS _abs, sha256 FROM image_probes WHERE path IN (SELECT _abs FROM _images)"
        )
    return located.select("_root", "_rel", "_abs").join(sha, on="_abs", how="left", maintain_order="left")


def _prefix(root: str) -> str:
    """What ``str(Path(root) / rel)`` puts before ``rel``."""
    text = str(Path(root))
    return "" if text == "." else text if text.endswith("/") else text + "/"


def prompt_text(template: str) -> pl.Expr:
    """The user text of every row's prompt: ``PromptTemplate.question`` as string concatenation."""
    t = get_template(template)
    (rec_before, rec_after), (ovd_before, ovd_after) = t.around("rec"), t.around("ovd")
    problem, task = pl.col("problem"), pl.col("task")
    expression = problem.str.strip_chars(WHITESPACE).str.strip_chars_end(".")
    return (
        pl.when(task == "rec")
        .then(pl.concat_str([pl.lit(rec_before), expression, pl.lit(rec_after)]))
        .otherwise(pl.concat_str([pl.lit(ovd_before), problem, pl.lit(ovd_after)]))
    )


def check_tasks(table: pl.DataFrame) -> None:
    """ValueError naming the first sample whose task has no prompt."""
    bad = table.filter(~pl.col("task").is_in(TASKS))
    if bad.height:
        raise ValueError(f"unknown task {bad['task'][0]!r} (sample {bad['sample_id'][0]}); expected 'rec' or 'ovd'")


def prompt_array(texts: pa.Array) -> pa.Array:
    """One user turn per row, an image placeholder then the text: TRL's conversational prompt, as Arrow."""
    n = len(texts)
    kinds = pc.take(pa.array(["image", "text"]), pa.array(np.tile(np.array([0, 1], np.int32), n)))
    every_second = pa.array(np.repeat(np.arange(n, dtype=np.int64), 2), mask=np.tile([True, False], n))
    parts = pa.StructArray.from_arrays([kinds, pc.take(texts, every_second)], ["type", "text"])
    content = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), parts)
    role = pc.take(pa.array(["user"]), pa.array(np.zeros(n, np.int32)))
    turns = pa.StructArray.from_arrays([role, content], ["role", "content"])
    return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), turns).cast(
        SHARD_SCHEMA.field("prompt").type
    )


def _image(chunk: pl.DataFrame, roots: list[str], embed: bool) -> tuple[pa.Array, pa.Array]:
    rel = chunk["_rel"].to_arrow().cast(pa.string())
    if embed:
        data = []
        for path in chunk["_abs"].to_list():  # reading the files is the work here, not the loop
            with open(path, "rb") as fh:
                data.append(fh.read())
        return pa.StructArray.from_arrays([pa.array(data, pa.binary()), rel], ["bytes", "path"]), pa.nulls(
            chunk.height, pa.int32()
        )
    index = chunk["_root"].replace_strict({r: i for i, r in enumerate(roots)}, return_dtype=pl.Int32)
    image = pa.StructArray.from_arrays([pa.nulls(chunk.height, pa.binary()), rel], ["bytes", "path"])
    return image, index.to_arrow()


def _column(chunk: pl.DataFrame, field: pa.Field) -> pa.Array:
    if field.name not in chunk.columns:
        return pa.nulls(chunk.height, field.type)
    return chunk[field.name].to_arrow().cast(field.type)


def shard_batches(
    frames: Iterator[pl.DataFrame], roots: list[str], template: str, embed_images: bool
) -> Iterator[pa.RecordBatch]:
    """Record batches in ``SHARD_SCHEMA``, exactly ``ROW_GROUP`` rows each (the last fewer), from the selected rows
    (``INPUTS`` columns, in order, any chunking)."""
    text = prompt_text(template)

    def batches() -> Iterator[pa.RecordBatch]:
        for chunk in frames:
            chunk = with_locations(chunk)
            image, image_root = _image(chunk, roots, embed_images)
            built = {
                "prompt": prompt_array(chunk.select(text).to_series().to_arrow().cast(pa.string())),
                "image": image,
                "image_root": image_root,
            }
            arrays = [built[f.name] if f.name in built else _column(chunk, f) for f in SHARD_SCHEMA]
            yield pa.RecordBatch.from_arrays(arrays, schema=SHARD_SCHEMA)

    pending: list[pa.RecordBatch] = []
    for batch in batches():
        pending.append(batch)
        if sum(b.num_rows for b in pending) < ROW_GROUP:
            continue
        table = pa.Table.from_batches(pending)
        whole = table.num_rows // ROW_GROUP * ROW_GROUP
        for start in range(0, whole, ROW_GROUP):
            yield table.slice(start, ROW_GROUP).combine_chunks().to_batches()[0]
        pending = table.slice(whole).combine_chunks().to_batches() if whole < table.num_rows else []
    if pending:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


# The sample columns the shards are made of (the difficulty columns come with the selection).
INPUTS = [n for n in SHARD_SCHEMA.names if n not in ("prompt", "image", "image_root", *NO_DIFFICULTY)] + [
    "image_key",
    "image_path",
]
