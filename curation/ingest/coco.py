"""COCO instances json -> images, annotations and one OVD sample per image.

Two readers fill the same typed tables, and one set of SQL value rules
(finiteness, positive sizes, references, duplicates) decides what is kept:

- fast: msgspec decodes the file against a typed schema (``_CocoFile``),
  skipping the fields ingest does not use (segmentation polygons, most of the
  bytes). It succeeds only when every record has the right JSON types.
- exact: otherwise DuckDB's ``read_json`` reads every field as ``JSON`` and
  SQL type rules name each bad record (a string "10" in a box is a reject,
  never silently cast). A file DuckDB cannot read (truncated, not an object)
  goes through Python: ``json.load``, then ijson salvage up to the break,
  which itself becomes a reject.

Each bad record becomes a reject with its section, index in that section, id
and reason; the rest of the file is ingested.

OVD samples: the prompt lists the categories present (non-crowd boxes) plus
``absent`` categories not in the image at all, in an order that never tells
which are present. Choice and order come from a 64-bit hash of (seed, split,
image id, category name), so an image's prompt does not change when other
images or categories are added. The solution holds every non-crowd box.
Images with no box are kept as "None" samples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Optional

import duckdb
import msgspec
import numpy as np
import pyarrow as pa
from pydantic import Field

from curation.ingest.reader import Reader
from curation.ingest.store import Reject, add_rejects
from vlmr1.records import sample_id_sql

SECTIONS = {
    "categories": ("raw_cats", ["id", "name"]),
    "images": ("raw_images", ["id", "file_name", "width", "height"]),
    "annotations": ("raw_anns", ["id", "image_id", "category_id", "bbox", "area", "iscrowd"]),
}
INT = "('BIGINT', 'UBIGINT')"
NUM = "('BIGINT', 'UBIGINT', 'DOUBLE')"


def split_name(path: Path) -> str:
    """``instances_train2017.json`` -> ``train2017``."""
    stem = path.stem
    return stem.split("instances_", 1)[1] if "instances_" in stem else stem


def stage_instances(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Read, validate and stage a COCO-format
    file's images and annotations; leave cats_ok/imgs_ok/anns_ok for the caller.

    Shared by the COCO, RefCOCO (instances.json) and D3 readers; returns the record count.
    """
    _load_typed(con, path)
    n_records = sum(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TYPED)
    _validate(con)
    con.execute("INSERT INTO new_images SELECT image_id, image_key, width, height FROM imgs_ok")
    con.execute(
        "INSERT INTO new_anns SELECT ann_id, image_id, category_id, category, x1, y1, x2, y2, area, iscrowd FROM "
        "anns_ok"
    )
    return n_records


# ---------------------------------------------------------------- reading


class _Image(msgspec.Struct, gc=False):
    id: int
    file_name: str
    width: int
    height: int


class _Annotation(msgspec.Struct, gc=False):
    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    area: Optional[float] = None
    iscrowd: int = 0


class _Category(msgspec.Struct, gc=False):
    id: int
    name: str


class _CocoFile(msgspec.Struct):
    """The fields ingest uses; msgspec skips the rest (segmentation polygons are most of the bytes) without building
    them."""

    images: list[_Image] = []
    annotations: list[_Annotation] = []
    categories: list[_Category] = []


TYPED = {
    "typed_cats": "i BIGINT, id BIGINT, name VARCHAR, rid VARCHAR, reason VARCHAR",
    "typed_images": "i BIGINT, id BIGINT, image_key VARCHAR, width BIGINT, height BIGINT, rid VARCHAR, reason VARCHAR",
    "typed_anns": "i BIGINT, id BIGINT, image_id BIGINT, category_id BIGINT, x DOUBLE, y DOUBLE, w DOUBLE, h DOUBLE, "
    "area DOUBLE, "
    "iscrowd BOOLEAN, rid VARCHAR, reason VARCHAR",
}


def _load_typed(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """typed_cats / typed_images / typed_anns: one row per record, ``i`` = index in its section.

    A record whose fields have the wrong JSON type carries its ``reason``
    already; the value rules (``_validate``) apply to the rest.
    """
    for name, columns in TYPED.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({columns})")
    try:
        if _load_typed_fast(con, path):
            return
    except OverflowError:  # an integer beyond int64: let the exact path name it
        pass
    for name in TYPED:
        con.execute(f"DELETE FROM {name}")
    _load_raw(con, path)
    _type_rules(con)


def _load_typed_fast(con: duckdb.DuckDBPyConnection, path: Path) -> bool:
    """Decode with msgspec against the typed schema. False when any record breaks it (then the exact path runs)."""
    try:
        with open(path, "rb") as fh:
            data = msgspec.json.decode(fh.read(), type=_CocoFile)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return False
    cats, imgs, anns = data.categories, data.images, data.annotations
    del data
    tables = {
        "typed_cats": {"id": [c.id for c in cats], "name": [c.name for c in cats]},
        "typed_images": {
            "id": [m.id for m in imgs],
            "image_key": [m.file_name for m in imgs],
            "width": [m.width for m in imgs],
            "height": [m.height for m in imgs],
        },
    }
    box = np.array([a.bbox for a in anns], dtype=np.float64).reshape(-1, 4)
    tables["typed_anns"] = {
        "id": np.fromiter((a.id for a in anns), np.int64, len(anns)),
        "image_id": np.fromiter((a.image_id for a in anns), np.int64, len(anns)),
        "category_id": np.fromiter((a.category_id for a in anns), np.int64, len(anns)),
        "x": box[:, 0],
        "y": box[:, 1],
        "w": box[:, 2],
        "h": box[:, 3],
        "area": pa.array([a.area for a in anns], pa.float64()),
        "iscrowd": pa.array([a.iscrowd for a in anns], pa.int64()),
    }
    crowd_values = (
        set(np.unique(tables["typed_anns"]["iscrowd"].to_numpy(zero_copy_only=False)).tolist()) if anns else set()
    )
    if not crowd_values <= {0, 1}:
        return False
    for name, cols in tables.items():
        n = len(next(iter(cols.values())))
        cols = {"i": np.arange(n, dtype=np.int64), **cols}
        con.register("_typed", pa.table(cols))
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _typed")
        con.unregister("_typed")
    return True


def _load_raw(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """raw_cats / raw_images / raw_anns with every field as JSON: DuckDB's reader, or Python's for a broken file."""
    columns = ", ".join(
        f"{section}: 'STRUCT({', '.join(f'{f} JSON' for f in fields)})[]'" for section, (_, fields) in SECTIONS.items()
    )
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE raw_file AS SELECT * FROM read_json(?, columns = {{{columns}}}, format = "
            "'unstructured', "
            f"records = true, maximum_object_size = ?)",
            [str(path), max(path.stat().st_size + 1, 1 << 24)],
        )
        if con.execute("SELECT count(*) FROM raw_file").fetchone()[0] != 1:
            raise duckdb.InvalidInputException("top level is not one object")
        for section, (table, _fields) in SECTIONS.items():
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT generate_subscripts({section}, 1) - 1 AS i, "
                f"unnest({section}, recursive := true) FROM raw_file"
            )
        con.execute("DROP TABLE raw_file")
    except (duckdb.Error, OverflowError):
        con.execute("DROP TABLE IF EXISTS raw_file")
        _load_raw_python(con, path)


def _load_raw_python(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    rejects: list[Reject] = []
    sections = load_sections(path, rejects)
    add_rejects(con, rejects)
    for section, (table, fields) in SECTIONS.items():
        index, records = [], []
        for i, r in enumerate(sections[section]):
            try:
                records.append(json.dumps(r, allow_nan=True, ensure_ascii=False).encode("utf-8").decode("utf-8"))
                index.append(i)
            except UnicodeEncodeError:  # a lone surrogate: this record is a reject, the rest go on
                rid = str(r.get("id")) if isinstance(r, dict) else None
                add_rejects(con, [Reject(section, i, rid, "text is not valid UTF-8: it holds a lone surrogate")])
        con.register("_records", pa.table({"i": pa.array(index, pa.int64()), "rec": pa.array(records, pa.string())}))
        picks = ", ".join(f"rec::JSON -> '{f}' AS {f}" for f in fields)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT i, {picks} FROM _records")
        con.unregister("_records")


def load_sections(path: Path, rejects: list[Reject]) -> dict[str, list]:
    """The file's top-level arrays, by Python (the fallback).

    Whole-file ``json`` first (accepts NaN, which COCO writers emit). If the
    file is broken (truncated, say), each section is streamed with ijson up
    to the break, and the break becomes a reject.
    """
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except ValueError as exc:
        rejects.append(Reject("file", None, None, f"JSON unreadable: {exc}; salvaging the records before the error"))
        return {section: list(_stream(path, section)) for section in SECTIONS}
    if not isinstance(data, dict):
        rejects.append(
            Reject("file", None, None, f"JSON unreadable: top level is {type(data).__name__}, not an object")
        )
        return {section: [] for section in SECTIONS}
    out = {}
    for section in SECTIONS:
        value = data.get(section, [])
        if not isinstance(value, list):
            rejects.append(Reject(section, None, None, f"section is not a list: {type(value).__name__}"))
            value = []
        out[section] = value
    return out


def _stream(path: Path, section: str):
    """Records of one top-level array, up to the first parse error."""
    import ijson

    try:
        with open(path, "rb") as fh:
            yield from ijson.items(fh, f"{section}.item", use_float=True)
    except (ijson.JSONError, ijson.IncompleteJSONError, ValueError):
        return


# ---------------------------------------------------------------- validating


def _type_rules(con: duckdb.DuckDBPyConnection) -> None:
    """raw_* (fields as JSON) -> typed_*: a field of the wrong JSON type is a reason, never a silent cast ("10" is not
    10)."""
    rid = "CASE WHEN json_type(id) = 'VARCHAR' THEN id ->> '$' ELSE id::VARCHAR END"
    int_or_null = lambda f: f"CASE WHEN json_type({f}) IN {INT} THEN TRY_CAST({f} AS BIGINT) END"  # noqa: E731
    # not an integer, or one outside 64-bit signed range (2^63 and up): typed it would become NULL
    not_int = lambda f: f"(json_type({f}) NOT IN {INT} OR TRY_CAST({f} AS BIGINT) IS NULL)"  # noqa: E731
    con.execute(f"""INSERT INTO typed_cats SELECT i, {int_or_null("id")}, name ->> '$', {rid},
        CASE WHEN {not_int("id")} OR json_type(name) IS DISTINCT FROM 'VARCHAR'
             THEN 'category needs an integer id and a non-empty name' END FROM raw_cats""")
    con.execute(f"""INSERT INTO typed_images SELECT i, {int_or_null("id")}, file_name ->> '$', {int_or_null("width")},
        {int_or_null("height")}, {rid},
        CASE WHEN {not_int("id")} THEN 'image needs an integer id (64-bit)'
             WHEN {not_int("width")} OR {not_int("height")}
             THEN 'width/height must be positive integers: ' || coalesce(width::VARCHAR, 'missing') || 'x' ||
             coalesce(height::VARCHAR, 'missing')
             WHEN json_type(file_name) IS DISTINCT FROM 'VARCHAR' THEN 'file_name missing' END FROM raw_images""")
    bbox_ok = (
        f"json_type(bbox) = 'ARRAY' AND json_array_length(bbox) = 4 "
        f"AND list_bool_and(list_transform(json_type(bbox, ['$[0]', '$[1]', '$[2]', '$[3]']), lambda t: t IN {NUM}))"
    )
    con.execute(f"""INSERT INTO typed_anns
        SELECT i, {int_or_null("id")}, {int_or_null("image_id")}, {int_or_null("category_id")}, b[1], b[2], b[3], b[4],
            CASE WHEN json_type(area) IN {NUM} THEN area::DOUBLE END,
            coalesce(iscrowd::VARCHAR IN ('1', 'true'), false), {rid},
            CASE WHEN {not_int("id")} THEN 'annotation needs an integer id (64-bit)'
                 WHEN {not_int("image_id")} THEN 'unknown image id: ' ||
                 coalesce(image_id::VARCHAR, 'missing')
                 WHEN {not_int("category_id")}
                      THEN 'unknown category id: ' || coalesce(category_id::VARCHAR, 'missing')
                 WHEN b IS NULL THEN 'bbox must be 4 finite numbers: ' || coalesce(bbox::VARCHAR, 'missing')
                 WHEN iscrowd IS NOT NULL AND iscrowd::VARCHAR NOT IN ('0', '1', 'true', 'false') THEN
                 'iscrowd must be 0 or 1: ' || iscrowd::VARCHAR
            END
        FROM (SELECT *, CASE WHEN {bbox_ok} THEN bbox::DOUBLE[] END AS b FROM raw_anns)""")
    for t in ("raw_cats", "raw_images", "raw_anns"):
        con.execute(f"DROP TABLE {t}")


def _validate(con: duckdb.DuckDBPyConnection) -> None:
    """Value rules over typed_* -> cats_ok / imgs_ok / anns_ok; every other record goes to new_rejects with its
    reason."""
    con.execute(
        "UPDATE typed_cats SET reason = 'category needs an integer id and a non-empty name' WHERE reason IS NULL AND "
        "trim(name) = ''"
    )
    _reject_and_dedupe(con, "typed_cats", "categories", "duplicate category id")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE cats_ok AS SELECT id AS category_id, trim(name) AS name FROM typed_cats WHERE "
        "reason IS NULL"
    )

    con.execute("""UPDATE typed_images SET reason = CASE
            WHEN width <= 0 OR height <= 0 OR width > 2147483647 OR height > 2147483647
                THEN 'width/height must be positive integers: ' || width || 'x' || height
            WHEN image_key = '' THEN 'file_name missing' END
        WHERE reason IS NULL""")
    _reject_and_dedupe(con, "typed_images", "images", "duplicate image id")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE imgs_ok AS SELECT id AS image_id, image_key, width::INTEGER AS width, "
        "height::INTEGER AS height "
        "FROM typed_images WHERE reason IS NULL"
    )

    con.execute("""CREATE OR REPLACE TEMP TABLE anns_checked AS
        SELECT a.i, a.id, a.rid, im.image_id, a.category_id, c.name AS category, a.x, a.y, a.w, a.h, a.area, a.iscrowd,
            coalesce(a.reason, CASE
                WHEN im.image_id IS NULL THEN 'unknown image id: ' || a.image_id
                WHEN c.name IS NULL THEN 'unknown category id: ' || a.category_id
                WHEN NOT (isfinite(a.x) AND isfinite(a.y) AND isfinite(a.w) AND isfinite(a.h))
                    THEN 'bbox must be 4 finite numbers: [' || a.x || ', ' || a.y || ', ' || a.w || ', ' || a.h || ']'
                WHEN a.w <= 0 OR a.h <= 0 THEN 'bbox has no area: w=' || a.w || ', h=' || a.h
                WHEN NOT (isfinite(a.x + a.w) AND isfinite(a.y + a.h))
                    THEN 'bbox overflows: x + w or y + h is not a finite number'
                WHEN a.x + a.w <= a.x OR a.y + a.h <= a.y
                    THEN 'bbox has no area in xyxy: w=' || a.w || ' or h=' || a.h || ' vanishes next to x, y'
            END) AS reason
        FROM typed_anns a LEFT JOIN imgs_ok im ON im.image_id = a.image_id LEFT JOIN cats_ok c ON c.category_id =
        a.category_id""")
    _reject_and_dedupe(con, "anns_checked", "annotations", "duplicate annotation id")
    con.execute("""CREATE OR REPLACE TEMP TABLE anns_ok AS SELECT id AS ann_id, image_id, category_id, category,
            x AS x1, y AS y1, x + w AS x2, y + h AS y2, CASE WHEN isfinite(area) THEN area ELSE w * h END AS area,
            iscrowd
        FROM anns_checked WHERE reason IS NULL""")
    # (image, category) pairs whose annotation was rejected: that category is in the image, so it must never be
    # offered as "absent" there (its answer would be a wrong None)
    con.execute("""CREATE OR REPLACE TEMP TABLE anns_lost AS
        SELECT DISTINCT image_id, category FROM anns_checked
        WHERE reason IS NOT NULL AND image_id IS NOT NULL AND category IS NOT NULL""")
    for t in ("typed_cats", "typed_images", "typed_anns", "anns_checked"):
        con.execute(f"DROP TABLE {t}")


def _reject_and_dedupe(con: duckdb.DuckDBPyConnection, table: str, section: str, duplicate: str) -> None:
    """Mark later copies of a valid id as duplicates, then move every invalid record to new_rejects."""
    con.execute(f"""UPDATE {table} SET reason = '{duplicate}' WHERE reason IS NULL AND i IN (
        SELECT i FROM {table} WHERE reason IS NULL QUALIFY row_number() OVER (PARTITION BY id ORDER BY i) > 1)""")
    con.execute(
        f"INSERT INTO new_rejects SELECT '{section}', i, coalesce(rid, id::VARCHAR), reason FROM {table} WHERE reason "
        "IS NOT NULL"
    )


# ---------------------------------------------------------------- samples


def _reject_without_categories(con: duckdb.DuckDBPyConnection) -> None:
    """A file with no usable category (e.g. truncated before its categories) gives no OVD sample at all."""
    if con.execute("SELECT count(*) FROM cats_ok").fetchone()[0]:
        return
    reason = "no usable categories in the file (truncated?): no OVD prompt can be formed"
    con.execute("INSERT INTO new_rejects SELECT 'images', NULL, image_id::VARCHAR, ? FROM imgs_ok", [reason])
    con.execute("DELETE FROM imgs_ok")


def _stage_samples(
    con: duckdb.DuckDBPyConnection, source: str, split: str, absent: int, seed: int, content_sha256: str
) -> None:
    image_ids = con.execute("SELECT image_id FROM imgs_ok ORDER BY image_id").fetchnumpy()["image_id"].astype(np.int64)
    names = [r[0] for r in con.execute("SELECT DISTINCT name FROM cats_ok ORDER BY name").fetchall()]
    pairs = con.execute("""SELECT a.image_id, n.col, bool_and(a.iscrowd) AS crowd_only FROM (
            SELECT image_id, category, iscrowd FROM anns_ok
            UNION ALL SELECT image_id, category, true FROM anns_lost) a
        JOIN (SELECT name, row_number() OVER (ORDER BY name) - 1 AS col FROM (SELECT DISTINCT name FROM cats_ok)) n ON
        n.name = a.category
        GROUP BY ALL""").fetchnumpy()
    rows = np.searchsorted(image_ids, pairs["image_id"].astype(np.int64))
    problems = ovd_problems(
        image_ids, names, rows, pairs["col"].astype(np.int64), ~pairs["crowd_only"].astype(bool), absent, seed, split
    )
    con.register("_problems", pa.table({"image_id": image_ids, "problem": problems}))
    con.execute(
        "INSERT INTO new_samples BY NAME SELECT "
        + sample_id_sql("?", "im.image_id")
        + """ AS sample_id, ?::VARCHAR AS source, ?::VARCHAR AS split,
            'ovd' AS task, im.image_key, im.width, im.height, p.problem, NULL AS problem_raw,
            coalesce(s.solution, '[]') AS solution, im.image_id, NULL AS ann_id, NULL AS ref_id, NULL AS sent_id,
            coalesce(s.category_ids, []::BIGINT[]) AS category_ids, ?::VARCHAR AS source_sha256,
            'images' AS rec_section, NULL AS rec_index, im.image_id::VARCHAR AS rec_id
        FROM imgs_ok im JOIN _problems p USING (image_id)
        LEFT JOIN (
            SELECT image_id, to_json(list({'label': category, 'bbox': [x1, y1, x2, y2]} ORDER BY ann_id))::VARCHAR AS
            solution,
                list_sort(list_distinct(list(category_id))) AS category_ids
            FROM anns_ok WHERE NOT iscrowd GROUP BY image_id
        ) s USING (image_id)""",
        [source, split, source, split, content_sha256],
    )
    con.unregister("_problems")


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash of each element (wrapping uint64 arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _name_hash(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def ovd_problems(
    image_ids: np.ndarray,
    names: list[str],
    rows: np.ndarray,
    cols: np.ndarray,
    present: np.ndarray,
    absent: int,
    seed: int,
    split: str,
    chunk: int = 8192,
) -> list[str]:
    """Phrase list per image: present categories plus ``absent`` sampled absent ones, in hashed order.

    ``(rows[k], cols[k])`` says image ``rows[k]`` has category ``names[cols[k]]``;
    ``present[k]`` is False when all its boxes are crowd (then it is neither
    listed nor offered as absent).
    """
    n, m = len(image_ids), len(names)
    out: list[str] = []
    if m == 0:
        return [""] * n
    quoted = np.array([repr(c) for c in names], dtype=object)  # as vlmr1.prompts.ovd_phrases
    salt = np.uint64(_name_hash(f"{seed}\x1f{split}"))
    col_hash = np.array([_name_hash(c) for c in names], dtype=np.uint64)
    top = np.iinfo(np.uint64).max
    order_rows = np.argsort(rows, kind="stable")
    rows, cols, present = rows[order_rows], cols[order_rows], present[order_rows]
    with np.errstate(over="ignore"):
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            lo, hi = np.searchsorted(rows, [start, stop])
            r, c, p = rows[lo:hi] - start, cols[lo:hi], present[lo:hi]
            ids = image_ids[start:stop].astype(np.uint64)
            key = _splitmix64(salt ^ _splitmix64(ids)[:, None] ^ col_hash[None, :])
            in_image = np.zeros((stop - start, m), bool)
            in_image[r, c] = True
            chosen = np.zeros_like(in_image)
            chosen[r[p], c[p]] = True
            if absent > 0:
                cand = np.where(in_image, top, key)
                k = min(absent, m)
                pick = (
                    np.argpartition(cand, k - 1, axis=1)[:, :k]
                    if k < m
                    else np.broadcast_to(np.arange(m), (stop - start, m))
                )
                ok = np.take_along_axis(cand, pick, axis=1) != top
                rr = np.broadcast_to(np.arange(stop - start)[:, None], pick.shape)
                chosen[rr[ok], pick[ok]] = True
            order_key = np.where(chosen, _splitmix64(key), top)
            order = np.argsort(order_key, axis=1, kind="stable")
            counts = chosen.sum(axis=1)
            for j in range(stop - start):
                out.append(", ".join(quoted[order[j, : counts[j]]]))
    return out


class CocoReader(Reader):
    """COCO instances json: images, annotations, one OVD sample per image."""

    kind: ClassVar[str] = "coco"
    expects: ClassVar[str] = "a COCO instances json with 'images', 'annotations' and 'categories'"
    source: str = Field("coco", description="Source name of the samples.")
    split: str | None = Field(None, description="Split (default: from the file name, instances_<split>.json).")
    absent: int = Field(3, ge=0, description="Absent categories added to each OVD prompt.")
    seed: int = Field(0, description="Seed for the absent categories and their order.")

    def for_file(self, path: Path) -> CocoReader:
        return self.model_copy(update={"split": self.split or split_name(path)})

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path, content_sha256: str, images=None) -> int:
        n_records = stage_instances(con, path)
        _reject_without_categories(con)
        _stage_samples(con, self.source, self.split or split_name(path), self.absent, self.seed, content_sha256)
        for t in ("cats_ok", "imgs_ok", "anns_ok", "anns_lost"):
            con.execute(f"DROP TABLE IF EXISTS {t}")
        return n_records
