"""Write one parsed source file into the catalog: one transaction, idempotent.

A file is identified by the sha256 of its bytes. Ingesting the same bytes
again adds nothing; a file at a known path with new bytes replaces exactly
the rows of its previous version. A sample id already owned by another file
becomes a reject instead of a silent overwrite or a failed transaction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from curation import catalog

OWNED_TABLES = ("images", "annotations", "samples", "rejects")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class IngestSummary:
    path: str
    file_id: str
    skipped: bool = False
    replaced: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)


def _table(rows: list[dict], columns: list[str], file_id: str, source: str | None = None) -> pa.Table:
    data = {c: [r.get(c) for r in rows] for c in columns}
    data["file_id"] = [file_id] * len(rows)
    if source is not None:
        data["source"] = [source] * len(rows)
    return pa.table(data)


def store(catalog_path: Path, path: Path, file_id: str, kind: str, source: str, parsed, options: dict) -> IngestSummary:
    """Commit ``parsed`` (images, annotations, samples, rejects) as the rows of file ``file_id``."""
    summary = IngestSummary(str(path), file_id)
    with catalog.connect(catalog_path) as con:
        if con.execute("SELECT 1 FROM sources WHERE file_id = ?", [file_id]).fetchone():
            summary.skipped = True
            return summary
        con.execute("BEGIN TRANSACTION")
        try:
            old = con.execute("SELECT file_id FROM sources WHERE path = ? AND kind = ?", [str(path), kind]).fetchall()
            for (old_id,) in old:
                for t in OWNED_TABLES + ("sources",):
                    con.execute(f"DELETE FROM {t} WHERE file_id = ?", [old_id])
                summary.replaced = old_id
            images = _table(parsed.images, ["image_id", "image_key", "width", "height"], file_id, source)
            anns = _table(parsed.annotations, ["ann_id", "image_id", "category_id", "category", "x1", "y1", "x2", "y2", "area", "iscrowd"], file_id, source)
            con.register("new_images", images)
            con.register("new_anns", anns)
            if images.num_rows:
                con.execute("INSERT INTO images BY NAME SELECT * FROM new_images")
            if anns.num_rows:
                con.execute("INSERT INTO annotations BY NAME SELECT * FROM new_anns")
            rejects = [{"section": r.section, "record_index": r.record_index, "record_id": r.record_id, "reason": r.reason} for r in parsed.rejects]
            if parsed.samples:
                samples = _table(parsed.samples, list(parsed.samples[0].keys()), file_id)
                con.register("new_samples", samples)
                taken = con.execute(
                    "SELECT n.sample_id, s.file_id FROM new_samples n JOIN samples s USING (sample_id)"
                ).fetchall()
                rejects += [{"section": "samples", "record_index": None, "record_id": sid, "reason": f"sample id already ingested from file {owner[:12]}"} for sid, owner in taken]
                con.execute("INSERT INTO samples BY NAME SELECT * FROM new_samples WHERE sample_id NOT IN (SELECT sample_id FROM samples)")
            if rejects:
                rej = _table(rejects, ["section", "record_index", "record_id", "reason"], file_id)
                rej = rej.append_column("path", pa.array([str(path)] * rej.num_rows))
                con.register("new_rejects", rej)
                con.execute("INSERT INTO rejects BY NAME SELECT * FROM new_rejects")
            n_samples = con.execute("SELECT count(*) FROM samples WHERE file_id = ?", [file_id]).fetchone()[0]
            con.execute(
                "INSERT INTO sources (file_id, kind, source, path, size_bytes, n_records, n_samples, n_rejects, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [file_id, kind, source, str(path), path.stat().st_size, parsed.n_records, n_samples, len(rejects), json.dumps(options, sort_keys=True)],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        summary.counts = {"images": images.num_rows, "annotations": anns.num_rows, "samples": n_samples, "rejects": len(rejects)}
        for r in rejects:
            key = r["reason"].split(":")[0]  # reasons read "what: detail"
            summary.rejects_by_reason[key] = summary.rejects_by_reason.get(key, 0) + 1
    return summary


def is_ingested(catalog_path: str | Path, file_id: str) -> bool:
    """Checked before parsing, so an unchanged file costs one hash and one query."""
    with catalog.connect(catalog_path) as con:
        return con.execute("SELECT 1 FROM sources WHERE file_id = ?", [file_id]).fetchone() is not None


def ingest_coco(catalog_path: str | Path, path: str | Path, *, source: str = "coco", split: str | None = None, absent: int = 3,
                seed: int = 0) -> IngestSummary:
    """Ingest one COCO instances file (see ``curation.ingest.coco``)."""
    from curation.ingest.coco import parse_coco

    path = Path(path)
    file_id = file_sha256(path)
    if is_ingested(catalog_path, file_id):
        return IngestSummary(str(path), file_id, skipped=True)
    options = {"source": source, "split": split, "absent": absent, "seed": seed}
    parsed = parse_coco(path, source=source, split=split, absent=absent, seed=seed, file_sha256=file_id)
    return store(Path(catalog_path), path, file_id, "coco", source, parsed, options)
