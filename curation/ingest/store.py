"""Write one source file into the catalog: one transaction, idempotent.

A file is identified by the sha256 of its bytes. Ingesting the same bytes
again adds nothing; a file at a known path with new bytes replaces exactly
the rows of its previous version. A sample id already owned by another file
becomes a reject instead of a silent overwrite or a failed transaction.

Readers do not write catalog tables. They *stage* rows into the temp tables
below (``STAGING``), either from Python rows (``stage_rows``) or straight
from SQL (the COCO reader, for speed); ``ingest_file`` then probes the
images and moves the staged rows into the catalog in one transaction. A
crash before COMMIT leaves the catalog exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa

from curation import catalog
from curation.images import ImageCheck

# Staging tables: what a reader produces for one file (catalog columns minus file_id/source).
STAGING = {
    "new_images": "image_id BIGINT, image_key VARCHAR, width INTEGER, height INTEGER",
    "new_anns": "ann_id BIGINT, image_id BIGINT, category_id BIGINT, category VARCHAR, "
                "x1 DOUBLE, y1 DOUBLE, x2 DOUBLE, y2 DOUBLE, area DOUBLE, iscrowd BOOLEAN",
    "new_samples": "sample_id VARCHAR, source VARCHAR, split VARCHAR, task VARCHAR, image_key VARCHAR, width INTEGER, height INTEGER, "
                   "problem VARCHAR, problem_raw VARCHAR, solution VARCHAR, image_id BIGINT, ann_id BIGINT, ref_id BIGINT, "
                   "sent_id BIGINT, category_ids BIGINT[], source_sha256 VARCHAR, eval_only BOOLEAN DEFAULT false, attributes VARCHAR",
    "new_rejects": "section VARCHAR, record_index BIGINT, record_id VARCHAR, reason VARCHAR",
}
# staging table -> catalog table it fills
TARGETS = {"new_images": "images", "new_anns": "annotations", "new_samples": "samples", "new_rejects": "rejects"}
OWNED_TABLES = ("images", "annotations", "samples", "rejects")


@dataclass
class Reject:
    """A record that was not ingested: where it is and why ("what: detail")."""

    section: str
    record_index: int | None
    record_id: str | None
    reason: str


@dataclass
class Staged:
    """Rows a Python reader produced for one file."""

    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    n_records: int = 0


@dataclass
class IngestSummary:
    path: str
    file_id: str
    skipped: bool = False
    replaced: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def create_staging(con: duckdb.DuckDBPyConnection) -> None:
    for name, columns in STAGING.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({columns})")


def stage_rows(con: duckdb.DuckDBPyConnection, staged: Staged) -> int:
    """Put a Python reader's rows into the staging tables; return its record count."""
    rejects = [{"section": r.section, "record_index": r.record_index, "record_id": r.record_id, "reason": r.reason} for r in staged.rejects]
    for name, rows in (("new_images", staged.images), ("new_anns", staged.annotations), ("new_samples", staged.samples), ("new_rejects", rejects)):
        if rows:
            columns = [c.split()[0] for c in STAGING[name].split(", ") if c.split()[0] in rows[0]]  # absent: the column default
            arrow = pa.table({c: [r.get(c) for r in rows] for c in columns})
            con.register("_rows", arrow)
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _rows")
            con.unregister("_rows")
    return staged.n_records


def add_rejects(con: duckdb.DuckDBPyConnection, rejects: list[Reject]) -> None:
    stage_rows(con, Staged(rejects=rejects))


def _copy(con: duckdb.DuckDBPyConnection, staging: str, file_id: str, source: str, path: Path) -> None:
    """Move one staging table into its catalog table, stamped with the owning file."""
    target = TARGETS[staging]
    extra = {"images": "?::VARCHAR AS source", "annotations": "?::VARCHAR AS source", "rejects": "?::VARCHAR AS path"}.get(target)
    args = [file_id] + ([str(path) if target == "rejects" else source] if extra else [])
    select = f"SELECT *, ?::VARCHAR AS file_id{', ' + extra if extra else ''} FROM {staging}"
    if target == "samples":  # a sample id owned by another file is not overwritten (it became a reject)
        select += " WHERE sample_id NOT IN (SELECT sample_id FROM samples)"
    con.execute(f"INSERT INTO {target} BY NAME {select}", args)


def _drop_duplicate_samples(con: duckdb.DuckDBPyConnection) -> None:
    """Safety net under the readers: one file never stages one sample id twice."""
    con.execute("INSERT INTO new_rejects SELECT 'samples', NULL, sample_id, 'duplicate sample id: ' || (count(*) - 1) || ' more with the same source key' "
                "FROM new_samples GROUP BY sample_id HAVING count(*) > 1")
    con.execute("DELETE FROM new_samples WHERE rowid NOT IN (SELECT min(rowid) FROM new_samples GROUP BY sample_id)")


def ingest_file(catalog_path: str | Path, path: str | Path, *, kind: str, source: str, options: dict,
                stage: Callable[[duckdb.DuckDBPyConnection, Path, str], int], images: ImageCheck | None = None,
                companions: list[Path] = ()) -> IngestSummary:
    """Ingest one file: ``stage(con, path, file_id)`` fills the staging tables, then one transaction commits them.

    ``images`` (an ``ImageCheck``) probes every image the file references and
    turns missing, corrupt or mis-sized images into rejects. ``companions``
    are files read along with ``path`` (RefCOCO's instances.json): their
    bytes are part of the file's identity, so changing one re-ingests.
    """
    catalog_path, path = Path(catalog_path), Path(path)
    file_id = file_sha256(path)
    if companions:
        file_id = hashlib.sha256("\x1f".join([file_id, *(file_sha256(Path(c)) for c in companions)]).encode()).hexdigest()
    summary = IngestSummary(str(path), file_id)
    if images is not None:
        options = {**options, "images": images.describe()}
    with catalog.connect(catalog_path) as con:
        if con.execute("SELECT 1 FROM sources WHERE file_id = ?", [file_id]).fetchone():
            summary.skipped = True
            return summary
        create_staging(con)
        n_records = stage(con, path, file_id)
        if images is not None:
            images.apply(con)
        _drop_duplicate_samples(con)
        con.execute(
            "INSERT INTO new_rejects SELECT 'samples', NULL, n.sample_id, 'sample id already ingested: from file ' || left(s.file_id, 12) "
            "FROM new_samples n JOIN samples s USING (sample_id) WHERE s.file_id NOT IN (SELECT file_id FROM sources WHERE path = ? AND kind = ?)",
            [str(path), kind],
        )
        con.execute("BEGIN TRANSACTION")
        try:
            for (old_id,) in con.execute("SELECT file_id FROM sources WHERE path = ? AND kind = ?", [str(path), kind]).fetchall():
                for t in OWNED_TABLES + ("sources",):
                    con.execute(f"DELETE FROM {t} WHERE file_id = ?", [old_id])
                summary.replaced = old_id
            for staging in TARGETS:
                _copy(con, staging, file_id, source, path)
            n_samples = con.execute("SELECT count(*) FROM samples WHERE file_id = ?", [file_id]).fetchone()[0]
            n_rejects = con.execute("SELECT count(*) FROM new_rejects").fetchone()[0]
            con.execute(
                "INSERT INTO sources (file_id, kind, source, path, size_bytes, n_records, n_samples, n_rejects, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [file_id, kind, source, str(path), path.stat().st_size, n_records, n_samples, n_rejects, json.dumps(options, sort_keys=True)],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        summary.counts = {
            "images": con.execute("SELECT count(*) FROM new_images").fetchone()[0],
            "annotations": con.execute("SELECT count(*) FROM new_anns").fetchone()[0],
            "samples": n_samples,
            "rejects": n_rejects,
        }
        # reasons read "what: detail"; the summary groups by "what"
        for reason, n in con.execute("SELECT split_part(reason, ':', 1), count(*) FROM new_rejects GROUP BY 1 ORDER BY 1").fetchall():
            summary.rejects_by_reason[reason] = n
    return summary

