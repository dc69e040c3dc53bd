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
from curation.staging import REC_REF, STAGING, TARGETS, create_staging
from vlmr1.hashing import sha256_file
from vlmr1.report import StageReport


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

    @property
    def status(self) -> str:
        return "unchanged, skipped" if self.skipped else ("replaced" if self.replaced else "new")

    def report(self) -> StageReport:
        reasons = [{"reason": k, "rejects": v} for k, v in sorted(self.rejects_by_reason.items())]
        counts = {"file": self.path, "status": self.status, **self.counts}
        return StageReport("ingest", f"ingest {Path(self.path).name}", counts, tables={"rejects by reason": reasons})


def stage_rows(con: duckdb.DuckDBPyConnection, staged: Staged) -> int:
    """Put a Python reader's rows into the staging tables; return its record count."""
    rejects = [
        {"section": r.section, "record_index": r.record_index, "record_id": r.record_id, "reason": r.reason}
        for r in staged.rejects
    ]
    for name, rows in (
        ("new_images", staged.images),
        ("new_anns", staged.annotations),
        ("new_samples", staged.samples),
        ("new_rejects", rejects),
    ):
        if rows:
            columns = [
                c.split()[0] for c in STAGING[name].split(", ") if c.split()[0] in rows[0]
            ]  # absent: the column default
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
    stamps = {
        "file_id": file_id,
        **({"source": source} if target in ("images", "annotations") else {}),
        **({"path": str(path)} if target == "rejects" else {}),
    }
    columns = "* EXCLUDE (rec_section, rec_index, rec_id)" if target == "samples" else "*"
    select = f"SELECT {columns}, " + ", ".join(f"?::VARCHAR AS {name}" for name in stamps) + f" FROM {staging}"
    if target == "samples":  # a sample id owned by another file is not overwritten (it became a reject)
        select += " WHERE sample_id NOT IN (SELECT sample_id FROM samples)"
    con.execute(f"INSERT INTO {target} BY NAME {select}", list(stamps.values()))


def _drop_duplicate_samples(con: duckdb.DuckDBPyConnection) -> None:
    """Safety net under the readers: one file never stages one sample id twice."""
    later = "rowid NOT IN (SELECT min(rowid) FROM new_samples GROUP BY sample_id)"
    con.execute(
        f"INSERT INTO new_rejects SELECT {REC_REF}, 'duplicate sample id: same source key as an earlier record' FROM "
        f"new_samples WHERE {later}"
    )
    con.execute(f"DELETE FROM new_samples WHERE {later}")


def ingest_file(
    catalog_path: str | Path,
    path: str | Path,
    *,
    kind: str,
    source: str,
    options: dict,
    stage: Callable[[duckdb.DuckDBPyConnection, Path, str], int],
    images: ImageCheck | None = None,
    companions: list[Path] = (),
) -> IngestSummary:
    """Ingest one file: ``stage(con, path, content_sha256)`` fills the staging tables, then one transaction commits
    them.

    The file's identity (``file_id``) is the sha256 of its bytes, its
    companions' bytes, its kind and the options it is read with: the same
    bytes read the same way are skipped; new bytes or new options at a known
    path replace that path's rows.

    ``images`` (an ``ImageCheck``) probes every image the file references and
    turns missing, corrupt or mis-sized images into rejects. ``companions``
    are files read along with ``path`` (RefCOCO's instances.json): their
    bytes are part of the file's identity, so changing one re-ingests.
    """
    catalog_path, path = Path(catalog_path), Path(path)
    content = sha256_file(path)
    if images is not None:
        options = {**options, "images": images.describe()}
    identity = [content, *(sha256_file(Path(c)) for c in companions), kind, json.dumps(options, sort_keys=True)]
    file_id = hashlib.sha256("\x1f".join(identity).encode()).hexdigest()
    summary = IngestSummary(str(path), file_id)
    with catalog.connect(catalog_path) as con:
        if con.execute("SELECT 1 FROM sources WHERE file_id = ?", [file_id]).fetchone():
            summary.skipped = True
            return summary
        create_staging(con)
        n_records = stage(con, path, content)
        if images is not None:
            images.apply(con)
        _drop_duplicate_samples(con)
        con.execute(
            f"INSERT INTO new_rejects SELECT {REC_REF.replace('rec_', 'n.rec_').replace('sample_id', 'n.sample_id')}, "
            "'sample id already ingested: from file ' || left(s.file_id, 12) FROM new_samples n JOIN samples s USING "
            "(sample_id) WHERE s.file_id NOT IN (SELECT file_id FROM sources WHERE path = ? AND kind = ?)",
            [str(path), kind],
        )
        con.execute("BEGIN TRANSACTION")
        try:
            for (old_id,) in con.execute(
                "SELECT file_id FROM sources WHERE path = ? AND kind = ?", [str(path), kind]
            ).fetchall():
                for t in ("images", "annotations", "samples", "rejects", "sources"):
                    con.execute(f"DELETE FROM {t} WHERE file_id = ?", [old_id])
                summary.replaced = old_id
            for staging in TARGETS:
                _copy(con, staging, file_id, source, path)
            n_samples = con.execute("SELECT count(*) FROM samples WHERE file_id = ?", [file_id]).fetchone()[0]
            n_rejects = con.execute("SELECT count(*) FROM new_rejects").fetchone()[0]
            con.execute(
                "INSERT INTO sources (file_id, kind, source, path, size_bytes, n_records, n_samples, n_rejects, "
                "options, content_sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    file_id,
                    kind,
                    source,
                    str(path),
                    path.stat().st_size,
                    n_records,
                    n_samples,
                    n_rejects,
                    json.dumps(options, sort_keys=True),
                    content,
                ],
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
        for reason, n in con.execute(
            "SELECT split_part(reason, ':', 1), count(*) FROM new_rejects GROUP BY 1 ORDER BY 1"
        ).fetchall():
            summary.rejects_by_reason[reason] = n
    return summary
