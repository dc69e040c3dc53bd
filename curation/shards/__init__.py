"""Shards: a selection written as checksummed parquet with a manifest (``write``), its columns (``columns``)."""
