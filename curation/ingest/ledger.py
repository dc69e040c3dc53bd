"""The ingest stage's ledger over several files: one row per file, the rejects by reason summed, and one whole
line per file that failed or gave no sample. A file that cannot be read never stops the others."""

from __future__ import annotations

import pickle
from pathlib import Path

from curation.catalog import CatalogBusy
from curation.ingest.source import SourceSpec
from curation.ingest.store import ingest_file, no_samples_line
from curation.ray_cluster import RaySpec
from vlmr1.errors import Interrupted
from vlmr1.report import StageReport

COLUMNS = ("file", "status", "samples", "images", "annotations", "rejects")
KNOWN = (ValueError, OSError, pickle.UnpicklingError)  # a file's own fault: its line is the news, not the type


class IngestLedger:
    def __init__(self, files: int):
        self.files, self.rows, self.reasons, self.problems = files, [], {}, []

    def ingest(self, catalog: str | Path, source: SourceSpec, ray: RaySpec | None) -> None:
        """One file in; a failure becomes a row and a line (a held catalog or Ctrl-C stops everything)."""
        reader, check = source.reader(), source.image_check(ray)
        try:
            summary = ingest_file(catalog, source.path, reader, images=check)
        except (CatalogBusy, Interrupted):
            raise  # every file would wait for the same lock
        except Exception as exc:  # noqa: BLE001 (one bad file never stops the others; the line says why)
            first = (str(exc).splitlines() or [""])[0]
            self.problems.append(first if isinstance(exc, KNOWN) else f"{source.path}: {type(exc).__name__}: {exc}")
            self.rows.append({"file": source.path, "status": "failed"} | {k: None for k in COLUMNS[2:]})
            return
        row = {"file": summary.path, "status": summary.status, **summary.counts}
        if summary.counts.get("samples") == 0 and not summary.skipped:
            row["status"] = "no samples"
            self.problems.append(no_samples_line(summary, reader, check))
        self.rows.append({k: row.get(k) for k in COLUMNS})
        for reason, n in summary.rejects_by_reason.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n

    def report(self) -> StageReport:
        counts = {"files": self.files, "failed": len(self.problems)}
        for key in COLUMNS[2:]:
            counts[key] = sum(r[key] or 0 for r in self.rows)
        reasons = [{"reason": k, "rejects": v} for k, v in sorted(self.reasons.items())]
        title = f"ingest {Path(self.rows[0]['file']).name}" if self.files == 1 else f"ingest: {self.files} files"
        return StageReport("ingest", title, counts, tables={"files": self.rows, "rejects by reason": reasons})

    def failed_line(self) -> str:
        rest = "the others were ingested" if len(self.problems) < self.files else "nothing was ingested"
        return f"{len(self.problems)} of {self.files} files failed or gave no sample; {rest}"
