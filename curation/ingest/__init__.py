"""Readers that fill the catalog, one per source format. Each ``ingest_*`` ingests one file in one transaction."""

from curation.ingest.coco import ingest_coco

__all__ = ["ingest_coco"]
