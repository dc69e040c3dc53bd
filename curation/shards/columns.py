"""A selection's rows as shard columns (``SHARD_SCHEMA``), built column by column: image locations, prompts, the
Arrow record batches the writer cuts into shards.

Nothing here runs Python per row except reading image bytes for embedded
shards: a prompt is the template's text before the problem, the problem, and
the text after it (``PromptTemplate.around``), and an image's root and
relative path come from string operations on ``image_path``. The values are
exactly those of the row-wise code (``kit.rowwise``).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from curation import catalog
from curation.selection.select import NO_DIFFICULTY, stream
from vlmr1.prompts import WHITESPACE, get_template
from vlmr1.shards import SHARD_SCHEMA

ROW_GROUP = 8192
CHUNK = 8 * ROW_GROUP  # rows read and turned into Arrow at once: bounds memory at 10M rows (a prompt is ~400 B)
TASKS = ("rec", "ovd")
# The sample columns the shards are made of (the difficulty columns come with the selection).
INPUTS = [n for n in SHARD_SCHEMA.names if n not in ("prompt", "image", "image_root", *NO_DIFFICULTY)] + [
    "image_key",
    "image_path",
]


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


def check_tasks(table: pl.DataFrame) -> None:
    """ValueError naming the first sample whose task has no prompt."""
    bad = table.filter(~pl.col("task").is_in(TASKS))
    if bad.height:
        raise ValueError(f"unknown task {bad['task'][0]!r} (sample {bad['sample_id'][0]}); expected 'rec' or 'ovd'")


def _repeated(words: list[str], n: int) -> pa.Array:
    """``words`` repeated ``n`` times, built from buffers (no per-element work)."""
    data = "".join(words).encode()
    steps = np.cumsum([0] + [len(w.encode()) for w in words])
    k = np.arange(len(words) * n + 1)
    offsets = (k // len(words)) * len(data) + steps[k % len(words)]
    return pa.Array.from_buffers(
        pa.string(), len(k) - 1, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data * n)]
    )


def _after_nulls(texts: pa.Array) -> pa.Array:
    """[null, t0, null, t1, ...]: each text after a null, sharing ``texts``' character data."""
    n = len(texts)
    texts = pa.concat_arrays([texts]) if texts.offset else texts
    validity, offsets, data = texts.buffers()
    o = np.frombuffer(offsets, np.int32, n + 1)
    doubled = np.append(np.repeat(o[:-1], 2), o[n])
    mask = np.packbits(np.tile(np.array([0, 1], np.uint8), n), bitorder="little")
    if validity is not None:  # a null text stays null
        present = np.unpackbits(np.frombuffer(validity, np.uint8), count=n, bitorder="little")
        mask = np.packbits(np.repeat(present, 2) & np.tile(np.array([0, 1], np.uint8), n), bitorder="little")
    return pa.Array.from_buffers(pa.string(), 2 * n, [pa.py_buffer(mask), pa.py_buffer(doubled), data])


def prompt_array(texts: pa.Array) -> pa.Array:
    """One user turn per row, an image placeholder then the text: TRL's conversational prompt, as Arrow."""
    n = len(texts)
    parts = pa.StructArray.from_arrays([_repeated(["image", "text"], n), _after_nulls(texts)], ["type", "text"])
    content = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), parts)
    turns = pa.StructArray.from_arrays([_repeated(["user"], n), content], ["role", "content"])
    return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), turns).cast(
        SHARD_SCHEMA.field("prompt").type
    )


def _derived(template: str) -> tuple[list[str], list]:
    """SQL over the stored columns: the prompt text (``PromptTemplate.question`` as concatenation, the REC problem
    stripped of Python's whitespace, then of trailing dots), the image root and relative path when ``image_path``
    ends with ``image_key`` (NULL otherwise: ``_locate`` applies the per-path rule); and their parameters."""
    t = get_template(template)
    (rec_before, rec_after), (ovd_before, ovd_after) = t.around("rec"), t.around("ovd")
    keyed = "suffix(s.image_path, '/' || s.image_key) AND strlen(s.image_path) > strlen(s.image_key) + 1"
    expressions = [
        "CASE WHEN s.task = 'rec' THEN ? || rtrim(trim(s.problem, ?), '.') || ? ELSE ? || s.problem || ? END AS _text",
        f"CASE WHEN {keyed} THEN left(s.image_path, length(s.image_path) - length(s.image_key) - 1) END AS _root",
        f"CASE WHEN {keyed} THEN s.image_key END AS _rel",
    ]
    return expressions, [rec_before, WHITESPACE, rec_after, ovd_before, ovd_after]


def _locate(batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array]:
    """(root, relative path) per row: SQL's, or for a path that does not end in its key, the file's folder and
    name (once per distinct path)."""
    root, rel = batch.column("_root"), batch.column("_rel")
    if not root.null_count:
        return root, rel
    paths = batch.column("image_path").to_pylist()
    roots, rels = root.to_pylist(), rel.to_pylist()
    split = {p: (str(Path(p).parent), Path(p).name) for p, r in zip(paths, roots) if r is None}
    for i, p in enumerate(paths):
        if roots[i] is None:
            roots[i], rels[i] = split[p]
    return pa.array(roots, pa.string()), pa.array(rels, pa.string())


def _image(batch: pa.RecordBatch, roots: list[str], embed: bool) -> tuple[pa.Array, pa.Array]:
    root, rel = _locate(batch)
    rel = rel.cast(pa.string())
    if embed:
        data = []
        for r, k in zip(root.to_pylist(), rel.to_pylist()):  # reading the files is the work here, not the loop
            with open(_prefix(r) + k, "rb") as fh:
                data.append(fh.read())
        image = pa.StructArray.from_arrays([pa.array(data, pa.binary()), rel], ["bytes", "path"])
        return image, pa.nulls(len(batch), pa.int32())
    image = pa.StructArray.from_arrays([pa.nulls(len(batch), pa.binary()), rel], ["bytes", "path"])
    return image, pc.index_in(root, value_set=pa.array(roots, pa.string())).cast(pa.int32())


def shard_batches(con, selection, roots: list[str], template: str, embed_images: bool) -> Iterator[pa.RecordBatch]:
    """Record batches in ``SHARD_SCHEMA``, exactly ``ROW_GROUP`` rows each (the last fewer), of the selection in
    order (``con`` from ``selection.ordered``)."""

    def batches() -> Iterator[pa.RecordBatch]:
        derived, params = _derived(template)
        for batch in stream(con, selection, INPUTS, derived, params, CHUNK):
            image, image_root = _image(batch, roots, embed_images)
            built = {
                "prompt": prompt_array(batch.column("_text").cast(pa.string())),
                "image": image,
                "image_root": image_root,
            }
            arrays = [built[f.name] if f.name in built else batch.column(f.name).cast(f.type) for f in SHARD_SCHEMA]
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


def prefetched(items: Iterator, depth: int = 2) -> Iterator:
    """``items`` produced by a background thread up to ``depth`` ahead, so building the next batch (DuckDB,
    polars and Arrow release the GIL) overlaps writing this one. The producer's errors are raised here; a consumer
    that stops early stops the producer."""
    out: queue.Queue = queue.Queue(depth)
    stop, end = threading.Event(), object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(end)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failed(exc))

    worker = threading.Thread(target=produce, name="shard-batches", daemon=True)
    worker.start()
    try:
        while (item := out.get()) is not end:
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc
