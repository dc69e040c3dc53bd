"""Readers that fill the catalog, one per source format (``curation.ingest.reader`` says the shape).

``READERS`` maps a kind to its reader class: the CLI's subcommands, the
flows' ``SourceSpec`` and ``ingest`` all resolve through it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from curation.ingest.coco import CocoReader
from curation.ingest.d3 import D3Reader
from curation.ingest.images import ImageCheck
from curation.ingest.jsonl import JsonlReader
from curation.ingest.reader import Reader
from curation.ingest.refcoco import RefcocoReader
from curation.ingest.store import IngestSummary, ingest_file

READERS: dict[str, type[Reader]] = {r.kind: r for r in (CocoReader, RefcocoReader, D3Reader, JsonlReader)}


def make_reader(kind: str, **options) -> Reader:
    """The reader for ``kind``; an unknown kind or option is a one-line ValueError naming it."""
    if kind not in READERS:
        raise ValueError(f"unknown source kind {kind!r}: expected one of {', '.join(READERS)}")
    try:
        return READERS[kind](**options)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ValueError(f"{kind} reader option {where!r}: {err['msg']}") from None


def ingest(
    kind: str, catalog_path: str | Path, path: str | Path, *, images: ImageCheck | None = None, **options
) -> IngestSummary:
    """Ingest one file of ``kind`` read with ``options`` (the reader's fields)."""
    return ingest_file(catalog_path, path, make_reader(kind, **options), images=images)


__all__ = ["READERS", "CocoReader", "D3Reader", "JsonlReader", "RefcocoReader", "Reader", "ingest", "make_reader"]
