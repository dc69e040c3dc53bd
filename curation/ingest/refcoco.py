"""RefCOCO / RefCOCO+ / RefCOCOg (the ``refer`` layout) -> one REC sample per sentence.

Reject ids read ``ref_id/sent_id`` (``ref_id/#j`` when the sentence has no id).

Layout: ``<dataset>/refs(<splitBy>).p`` (a Python 2 pickle: a list of refs,
each with ``ref_id``, ``ann_id``, ``image_id``, ``split`` and
``sentences`` of ``{sent_id, raw, sent}``) next to ``instances.json`` (COCO
format; its images are COCO train2014's, so RefCOCO val/test images are
COCO *train* images: a leakage risk the quality rules look at).

The pickle is read with ``safe_pickle.load_plain``: a pickle that tries to
call anything is refused and nothing runs. ``instances.json`` goes through
the COCO reader's rules, so its bad records are rejected the same way.

Per sentence: problem = the normalised ``sent`` (lower case, single spaces),
problem_raw = ``raw``; the box is the referenced annotation's, xyxy in
original pixels; split = ``<splitBy>/<split>`` (e.g. ``umd/val``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import duckdb
import pyarrow as pa
from pydantic import Field

from curation.ingest import coco
from curation.ingest.reader import Reader
from curation.ingest.safe_pickle import load_plain
from curation.ingest.store import Reject, add_rejects, int_id
from vlmr1.records import make_sample_id

_SPLIT_BY = re.compile(r"refs\((\w+)\)\.p$")
_SPACES = re.compile(r"\s+")


SENTENCE_SCHEMA = pa.schema(
    [(c, pa.int64()) for c in ("ref_index", "ref_id", "ann_id", "image_id", "sent_id")]
    + [(c, pa.string()) for c in ("split", "problem", "problem_raw", "sample_id")]
)


def split_by(path: Path) -> str:
    """``refs(umd).p`` -> ``umd``."""
    m = _SPLIT_BY.search(path.name)
    if not m:
        raise ValueError(f"{path}: expected a refer pickle named refs(<splitBy>).p")
    return m.group(1)


def normalize_sentence(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


def flatten_refs(refs, source: str, by: str, rejects: list[Reject]) -> list[dict]:
    """One row per sentence; a malformed ref or sentence becomes a reject (section ``refs``, index = ref position)."""
    rows = []
    if not isinstance(refs, list):
        rejects.append(Reject("file", None, None, f"refs pickle holds {type(refs).__name__}, not a list of refs"))
        return rows
    for i, ref in enumerate(refs):
        rid = str(ref.get("ref_id")) if isinstance(ref, dict) else None
        if not isinstance(ref, dict) or not all(int_id(ref.get(k)) for k in ("ref_id", "ann_id", "image_id")):
            rejects.append(Reject("refs", i, rid, "ref needs integer ref_id, ann_id and image_id"))
            continue
        if not isinstance(ref.get("split"), str) or not ref["split"]:
            rejects.append(Reject("refs", i, rid, f"ref has no split: {ref.get('split')!r}"))
            continue
        sentences = ref.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            rejects.append(Reject("refs", i, rid, "ref has no sentences"))
            continue
        for j, s in enumerate(sentences):
            raw = s.get("raw") if isinstance(s, dict) else None
            sent = s.get("sent") if isinstance(s, dict) else None
            text = sent if isinstance(sent, str) and sent.strip() else raw
            if (
                not isinstance(s, dict)
                or not int_id(s.get("sent_id"))
                or not isinstance(text, str)
                or not text.strip()
            ):
                sid = s.get("sent_id") if isinstance(s, dict) and int_id(s.get("sent_id")) else f"#{j}"
                rejects.append(
                    Reject("refs", i, f"{rid}/{sid}", f"sentence {j} needs an integer sent_id and non-empty text")
                )
                continue
            rows.append(
                {
                    "ref_index": i,
                    "ref_id": ref["ref_id"],
                    "ann_id": ref["ann_id"],
                    "image_id": ref["image_id"],
                    "sent_id": s["sent_id"],
                    "split": f"{by}/{ref['split']}",
                    "problem": normalize_sentence(text),
                    "problem_raw": raw if isinstance(raw, str) else None,
                    "sample_id": make_sample_id(source, (by, ref["ref_id"], s["sent_id"])),
                }
            )
    return rows


def stage_refcoco(
    con: duckdb.DuckDBPyConnection, path: Path, content_sha256: str, *, instances: Path, source: str
) -> int:
    """Fill the staging tables from a refs pickle and its instances.json; return the record count."""
    by = split_by(path)
    refs = load_plain(path)  # raises before anything is staged when the pickle is refused
    n_records = coco.stage_instances(con, instances)
    con.execute("UPDATE new_rejects SET section = 'instances.json/' || section")
    rejects: list[Reject] = []
    rows = flatten_refs(refs, source, by, rejects)
    add_rejects(con, rejects)
    n_records += len(refs) if isinstance(refs, list) else 1
    con.register("_sentences", pa.Table.from_pylist(rows, schema=SENTENCE_SCHEMA))
    con.execute("""CREATE OR REPLACE TEMP TABLE sentences AS
        SELECT s.*, a.ann_id IS NOT NULL AS known_ann, a.image_id AS ann_image, a.category_id, a.x1, a.y1, a.x2, a.y2,
               im.image_key, im.width, im.height
        FROM _sentences s LEFT JOIN anns_ok a USING (ann_id) LEFT JOIN imgs_ok im ON im.image_id = a.image_id""")
    con.unregister("_sentences")
    con.execute("""INSERT INTO new_rejects SELECT 'refs', ref_index, ref_id || '/' || sent_id,
            CASE WHEN NOT known_ann THEN 'unknown annotation id: ' || ann_id ||
            ' (not in instances.json, or rejected there)'
                 ELSE 'image id mismatch: ref says ' || image_id || ', its annotation is on ' || ann_image END
        FROM sentences WHERE NOT known_ann OR ann_image <> image_id""")
    con.execute(
        """INSERT INTO new_samples BY NAME
        SELECT sample_id, ?::VARCHAR AS source, split, 'rec' AS task, image_key, width, height, problem, problem_raw,
            to_json([{'label': problem, 'bbox': [x1, y1, x2, y2]}])::VARCHAR AS solution, image_id, ann_id, ref_id,
            sent_id,
            [category_id] AS category_ids, ?::VARCHAR AS source_sha256, 'refs' AS rec_section, ref_index AS rec_index,
            ref_id || '/' || sent_id AS rec_id
        FROM sentences WHERE known_ann AND ann_image = image_id""",
        [source, content_sha256],
    )
    for t in ("sentences", "cats_ok", "imgs_ok", "anns_ok", "anns_lost"):
        con.execute(f"DROP TABLE {t}")
    return n_records


class RefcocoReader(Reader):
    """RefCOCO / RefCOCO+ / RefCOCOg: one REC sample per sentence. Pickles are loaded as plain data only."""

    kind: ClassVar[str] = "refcoco"
    expects: ClassVar[str] = "a RefCOCO refs(...).p pickle with instances.json beside it"
    source: str | None = Field(None, description="Source name (default: the folder name, e.g. refcocog).")
    instances: Path | None = Field(None, description="The COCO-format instances file (default: beside it).")

    def for_file(self, path: Path) -> RefcocoReader:
        return self.model_copy(
            update={
                "source": self.source or path.parent.name.lower(),
                "instances": self.instances or path.parent / "instances.json",
            }
        )

    def companions(self) -> list[Path]:
        return [self.instances]

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path, content_sha256: str, images=None) -> int:
        return stage_refcoco(con, path, content_sha256, instances=self.instances, source=self.source)
