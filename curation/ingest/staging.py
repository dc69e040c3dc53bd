"""Staging tables: what a reader produces for one source file, before the commit moves it into the catalog.

Temp tables on the catalog connection, named ``new_*``. Their columns are
the catalog table's minus the owner stamps (file_id, source, path), plus,
for samples, a pointer back to the source record (``rec_*``) so a sample
rejected after staging (bad image, duplicate id) is named by its record.
"""

from __future__ import annotations

import duckdb

# Staging tables: what a reader produces for one file (catalog columns minus file_id/source).
STAGING = {
    "new_images": "image_id BIGINT, image_key VARCHAR, width INTEGER, height INTEGER",
    "new_anns": "ann_id BIGINT, image_id BIGINT, category_id BIGINT, category VARCHAR, "
    "x1 DOUBLE, y1 DOUBLE, x2 DOUBLE, y2 DOUBLE, area DOUBLE, iscrowd BOOLEAN",
    "new_samples": "sample_id VARCHAR, source VARCHAR, split VARCHAR, task VARCHAR, image_key VARCHAR, width INTEGER, "
    "height INTEGER, "
    "problem VARCHAR, problem_raw VARCHAR, solution VARCHAR, image_id BIGINT, ann_id BIGINT, ref_id BIGINT, "
    "sent_id BIGINT, category_ids BIGINT[], source_sha256 VARCHAR, eval_only BOOLEAN DEFAULT false, attributes "
    "VARCHAR, "
    # where the sample came from in its file, so later rejects (image, duplicate) name the record
    "rec_section VARCHAR, rec_index BIGINT, rec_id VARCHAR, image_path VARCHAR",
    "new_rejects": "section VARCHAR, record_index BIGINT, record_id VARCHAR, reason VARCHAR",
}
# staging table -> catalog table it fills
TARGETS = {"new_images": "images", "new_anns": "annotations", "new_samples": "samples", "new_rejects": "rejects"}
# section, record_index, record_id of a reject about a staged sample: its source record when the reader said, else the
# sample
REC_REF = "coalesce(rec_section, 'samples'), rec_index, coalesce(rec_id, sample_id)"


def create_staging(con: duckdb.DuckDBPyConnection) -> None:
    for name, columns in STAGING.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({columns})")
