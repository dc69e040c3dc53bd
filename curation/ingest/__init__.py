"""Readers that fill the catalog, one per source format. Each ``ingest_*`` ingests one file in one transaction."""

from curation.ingest.coco import ingest_coco
from curation.ingest.d3 import ingest_d3
from curation.ingest.jsonl import ingest_jsonl
from curation.ingest.refcoco import ingest_refcoco

# kind -> ingest function: the CLI's subcommands and the flows' SourceSpec.kind both resolve through this
INGESTERS = {"coco": ingest_coco, "refcoco": ingest_refcoco, "d3": ingest_d3, "jsonl": ingest_jsonl}

__all__ = ["INGESTERS", "ingest_coco", "ingest_d3", "ingest_jsonl", "ingest_refcoco"]
