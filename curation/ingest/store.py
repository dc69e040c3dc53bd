"""Write one source file into the catalog: one transaction, idempotent.

A file is identified by the sha256 of its bytes. Ingesting the same bytes
again adds nothing; a file at a known path with new bytes replaces exactly
the rows of its previous version. A sample id already owned by another file
becomes a reject instead of a silent overwrite or a failed transaction.

Readers (``curation.ingest.reader``) do not write catalog tables. They
*stage* rows into the temp tables (``STAGING``), either from Python rows
(``stage_rows``) or straight from SQL (the COCO reader, for speed);
``ingest_file`` then probes the images and moves the staged rows into the
catalog in one transaction. A
crash before COMMIT leaves the catalog exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from curation import catalog
from curation.ingest.images import ImageCheck
from curation.ingest.reader import Reader
from curation.ingest.sniff import wrong_reader
from curation.ingest.staging import REC_REF, STAGING, TARGETS, create_staging
from vlmr1.hashing import sha256_file
from vlmr1.records import safe_text
from vlmr1.report import StageReport


def int_id(v) -> bool:
    """A 64-bit integer id: bools, floats, lists and out-of-range ints are not (they become rejects)."""
    return isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63


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
    reject_examples: dict[str, str] = field(default_factory=dict)  # one whole reason per "what"

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
        {
            "section": r.section,
            "record_index": r.record_index,
            "record_id": None if r.record_id is None else safe_text(r.record_id),
            "reason": safe_text(r.reason),
        }
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


def regular_file(path: Path) -> None:
    """Refuse what would hang or never end before opening it: a FIFO, a device, a socket, a directory."""
    if not Path(path).is_file():
        what = "missing" if not Path(path).exists() else "not a regular file (a FIFO, device or directory)"
        raise ValueError(f"{path}: {what}")


def file_identity(content: str, reader: Reader, images: ImageCheck | None) -> tuple[str, dict]:
    """(file_id, options): sha256 over the file's bytes, its companions' bytes, the reader's kind and fields."""
    options = {**reader.identity(), **({"images": images.describe()} if images is not None else {})}
    parts = [content, *(sha256_file(c) for c in reader.companions()), reader.kind, json.dumps(options, sort_keys=True)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest(), options


def ingest_file(
    catalog_path: str | Path, path: str | Path, reader: Reader, *, images: ImageCheck | None = None
) -> IngestSummary:
    """Ingest one file: the reader stages its rows, then one transaction commits them.

    The same bytes read with the same reader fields are skipped; new bytes
    or new fields at a known path replace that path's rows. ``images`` (an
    ``ImageCheck``) probes every image the file references and turns
    missing, corrupt or mis-sized images into rejects.
    """
    path = Path(path)
    regular_file(path)
    mismatch = wrong_reader(path, reader.kind)
    if mismatch:
        raise ValueError(mismatch)
    reader = reader.for_file(path)
    for f in reader.companions():
        regular_file(f)
    content = sha256_file(path)
    file_id, options = file_identity(content, reader, images)
    summary = IngestSummary(str(path), file_id)
    with catalog.connect(catalog_path) as con:
        if con.execute("SELECT 1 FROM sources WHERE file_id = ?", [file_id]).fetchone():
            summary.skipped = True
            return summary
        create_staging(con)
        n_records = reader.stage(con, path, content, images)
        if images is not None:
            images.apply(con)
        _drop_duplicate_samples(con)
        _reject_taken_ids(con, path, reader.kind)
        with catalog.transaction(con):
            summary.replaced = _delete_previous(con, path, reader.kind)
            for staging in TARGETS:
                _copy(con, staging, file_id, reader.source_name(), path)
            _record_source(con, path, file_id, reader, n_records, options, content)
        _count(con, summary)
    return summary


def _reject_taken_ids(con: duckdb.DuckDBPyConnection, path: Path, kind: str) -> None:
    """A sample id owned by another file becomes a reject, never an overwrite."""
    con.execute(
        f"INSERT INTO new_rejects SELECT {REC_REF.replace('rec_', 'n.rec_').replace('sample_id', 'n.sample_id')}, "
        "'sample id already ingested: from file ' || left(s.file_id, 12) FROM new_samples n JOIN samples s USING "
        "(sample_id) WHERE s.file_id NOT IN (SELECT file_id FROM sources WHERE path = ? AND kind = ?)",
        [str(path), kind],
    )


def _delete_previous(con: duckdb.DuckDBPyConnection, path: Path, kind: str) -> str | None:
    """Remove the rows of this path's previous version; return its file id."""
    replaced = None
    previous = con.execute("SELECT file_id FROM sources WHERE path = ? AND kind = ?", [str(path), kind]).fetchall()
    for (old_id,) in previous:
        for t in ("images", "annotations", "samples", "rejects", "sources"):
            con.execute(f"DELETE FROM {t} WHERE file_id = ?", [old_id])
        replaced = old_id
    return replaced


def _record_source(con, path: Path, file_id: str, reader: Reader, n_records: int, options: dict, content: str):
    n_samples = con.execute("SELECT count(*) FROM samples WHERE file_id = ?", [file_id]).fetchone()[0]
    n_rejects = con.execute("SELECT count(*) FROM new_rejects").fetchone()[0]
    con.execute(
        "INSERT INTO sources (file_id, kind, source, path, size_bytes, n_records, n_samples, n_rejects, options, "
        "content_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [file_id, reader.kind, reader.source_name(), str(path), path.stat().st_size, n_records, n_samples, n_rejects]
        + [json.dumps(options, sort_keys=True), content],
    )


def _count(con: duckdb.DuckDBPyConnection, summary: IngestSummary) -> None:
    """What the file added, and its rejects grouped by the "what" of their "what: detail" reasons."""
    counts = con.execute(
        "SELECT (SELECT count(*) FROM new_images), (SELECT count(*) FROM new_anns), "
        "(SELECT n_samples FROM sources WHERE file_id = ?), (SELECT count(*) FROM new_rejects)",
        [summary.file_id],
    ).fetchone()
    summary.counts = dict(zip(("images", "annotations", "samples", "rejects"), counts))
    rows = con.execute(
        "SELECT split_part(reason, ':', 1), count(*), min(reason) FROM new_rejects GROUP BY 1 ORDER BY 1"
    ).fetchall()
    summary.rejects_by_reason = {what: n for what, n, _ in rows}
    summary.reject_examples = {what: example for what, _, example in rows}


def no_samples_line(summary: IngestSummary, reader: Reader, images: ImageCheck | None) -> str:
    """Why a file gave no sample, in one line: its images missing under the roots given (with the root that holds
    them, when one level off), or not the format the reader expects."""
    missing = summary.rejects_by_reason.get("image missing", 0)
    if images is None or not missing:
        return f"{summary.path}: no sample ingested (expected {reader.expects}; see --help)"
    example = summary.reject_examples["image missing"]
    key = example[example.rfind("(") + 1 : -1] if example.endswith(")") else ""
    roots = ", ".join(str(r) for r in images.roots)
    found = images.root_holding(key) if key else None
    fix = f"--images {found} holds it" if found else "give --images the folder its image paths are relative to"
    return (
        f"{summary.path}: no sample ingested: the images of {missing} samples are missing under --images {roots} "
        f"(e.g. {key}); {fix}"
    )
