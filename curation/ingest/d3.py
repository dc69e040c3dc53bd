"""D3 (the d-cube description-detection release) -> one sample per (image, description of its group).

Layout: ``d3_json/d3_full_annotations.json`` is COCO format where a category
is a description (category id = sentence id, name = the text), and
``d3_pkl/sentences.pkl`` / ``groups.pkl`` (plain-data pickles, read with
the restricted unpickler) say which descriptions belong to each image's
group and which are *absence* descriptions ("dog without leash").

D3's intra-group protocol evaluates every image against every description
of its group, annotated or not, so a pair without boxes is a real negative:
it becomes a sample with an empty solution ("None"). Samples are ``ovd``
with one phrase, split ``all``, ``eval_only`` (D3 has no train split and
must never reach a training shard), and ``attributes`` carry
``{"absence", "group_id"}``. Without the pickles only annotated pairs can
be formed; the summary says so through the ``options`` recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

import duckdb
import pyarrow as pa
from pydantic import Field

from curation.ingest import coco
from curation.ingest.reader import Reader
from curation.ingest.safe_pickle import load_plain
from curation.ingest.store import Reject, add_rejects, int_id
from vlmr1.prompts import ovd_phrases
from vlmr1.records import make_sample_id

PAIR_SCHEMA = pa.schema(
    [
        ("group_index", pa.int64()),
        ("group_id", pa.int64()),
        ("image_id", pa.int64()),
        ("sent_id", pa.int64()),
        ("text", pa.string()),
        ("absence", pa.bool_()),
        ("sample_id", pa.string()),
    ]
)


def _group_sentences(g: dict, gi: int, gid, sentences: dict, category_names: dict, rejects: list[Reject]) -> list:
    """(sent_id, text, is_absence) of a group's descriptions; unknown or malformed sentence ids become rejects."""
    sents = []
    for sid in g["inner_sent_id"]:
        s = sentences.get(sid) if int_id(sid) else None  # an unhashable or odd id is a reject, not a crash
        text = s.get("raw_sent") if isinstance(s, dict) else None
        text = text if isinstance(text, str) and text.strip() else (category_names.get(sid) if int_id(sid) else None)
        if not int_id(sid) or not text:
            rejects.append(
                Reject(
                    "groups",
                    gi,
                    f"{gid}/sent {sid}",
                    f"unknown sentence id: {sid!r} (not in sentences.pkl or the json)",
                )
            )
            continue
        sents.append((sid, text.strip(), bool(s.get("is_negative")) if isinstance(s, dict) else False))
    return sents


def pairs_from_groups(
    groups, sentences, image_ids: set[int], category_names: dict[int, str], rejects: list[Reject]
) -> list[dict]:
    """(image, description) pairs of D3's intra-group protocol; bad groups/references become rejects (section
    ``groups``)."""
    rows = []
    if not isinstance(groups, dict) or not isinstance(sentences, dict):
        rejects.append(Reject("file", None, None, "groups.pkl and sentences.pkl must each hold a dict keyed by id"))
        return rows
    for gi, (gid, g) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[0]))):
        if (
            not isinstance(g, dict)
            or not int_id(gid)
            or not isinstance(g.get("img_id"), list)
            or not isinstance(g.get("inner_sent_id"), list)
        ):
            rejects.append(
                Reject("groups", gi, str(gid), "group needs an integer id and img_id / inner_sent_id lists")
            )
            continue
        sents = _group_sentences(g, gi, gid, sentences, category_names, rejects)
        for image_id in g["img_id"]:
            if not int_id(image_id) or image_id not in image_ids:
                rejects.append(
                    Reject(
                        "groups",
                        gi,
                        f"{gid}/image {image_id}",
                        f"unknown image id: {image_id!r} (not in the json, or rejected there)",
                    )
                )
                continue
            for sid, text, absence in sents:
                rows.append(
                    {
                        "group_index": gi,
                        "group_id": gid,
                        "image_id": image_id,
                        "sent_id": sid,
                        "text": text,
                        "absence": absence,
                        "sample_id": make_sample_id("d3", ("all", image_id, sid)),
                    }
                )
    return rows


def stage_d3(con: duckdb.DuckDBPyConnection, path: Path, content_sha256: str, *, pkl_dir: Path | None) -> int:
    sentences = groups = None
    if pkl_dir is not None:
        sentences, groups = load_plain(pkl_dir / "sentences.pkl"), load_plain(pkl_dir / "groups.pkl")
    n_records = coco.stage_instances(con, path)
    names = dict(con.execute("SELECT category_id, name FROM cats_ok").fetchall())
    if groups is not None:
        rejects: list[Reject] = []
        image_ids = {r[0] for r in con.execute("SELECT image_id FROM imgs_ok").fetchall()}
        rows = pairs_from_groups(groups, sentences, image_ids, names, rejects)
        add_rejects(con, rejects)
        n_records += len(groups) if isinstance(groups, dict) else 0
    else:  # annotated pairs only: no negatives can be formed without the groups
        rows = [
            {
                "group_index": None,
                "group_id": None,
                "image_id": i,
                "sent_id": c,
                "text": names[c],
                "absence": None,
                "sample_id": make_sample_id("d3", ("all", i, c)),
            }
            for i, c in con.execute("SELECT DISTINCT image_id, category_id FROM anns_ok ORDER BY ALL").fetchall()
        ]
    for r in rows:
        r["problem"] = ovd_phrases([r["text"]])
        r["attributes"] = json.dumps({"absence": r["absence"], "group_id": r["group_id"]})
    schema = PAIR_SCHEMA.append(pa.field("problem", pa.string())).append(pa.field("attributes", pa.string()))
    con.register("_pairs", pa.Table.from_pylist(rows, schema=schema))
    con.execute(
        """INSERT INTO new_samples BY NAME
        SELECT p.sample_id, 'd3' AS source, 'all' AS split, 'ovd' AS task, im.image_key, im.width, im.height,
        p.problem, p.text AS problem_raw,
            coalesce(s.solution, '[]') AS solution, p.image_id, NULL AS ann_id, NULL AS ref_id, p.sent_id,
            [p.sent_id] AS category_ids, ?::VARCHAR AS source_sha256, true AS eval_only, p.attributes,
            'images' AS rec_section, NULL AS rec_index, p.image_id || '/sent ' || p.sent_id AS rec_id
        FROM _pairs p JOIN imgs_ok im USING (image_id)
        LEFT JOIN (
            SELECT a.image_id, a.category_id AS sent_id,
                to_json(list({'label': p2.text, 'bbox': [a.x1, a.y1, a.x2, a.y2]} ORDER BY a.ann_id))::VARCHAR AS
                solution
            FROM anns_ok a JOIN (SELECT DISTINCT sent_id, text FROM _pairs) p2 ON p2.sent_id = a.category_id
            WHERE NOT a.iscrowd GROUP BY ALL
        ) s USING (image_id, sent_id)""",
        [content_sha256],
    )
    con.unregister("_pairs")
    for t in ("cats_ok", "imgs_ok", "anns_ok", "anns_lost"):
        con.execute(f"DROP TABLE {t}")
    return n_records


class D3Reader(Reader):
    """D3: one evaluation-only sample per (image, description of its group), no-target pairs included."""

    kind: ClassVar[str] = "d3"
    expects: ClassVar[str] = "a D3 annotation json (images, annotations) with sentences.pkl and groups.pkl"
    source: Literal["d3"] = "d3"
    pkl_dir: Path | None = Field(
        None, description="Folder with sentences.pkl and groups.pkl (default: ../d3_pkl beside the file, if there)."
    )
    # derived by for_file, recorded so a summary says which pairs were formed: not an option
    pairs: str = Field("annotated only", json_schema_extra={"option": False})

    def for_file(self, path: Path) -> D3Reader:
        pkl_dir = self.pkl_dir
        if pkl_dir is None and (path.parent.parent / "d3_pkl" / "groups.pkl").exists():
            pkl_dir = path.parent.parent / "d3_pkl"
        pairs = "intra-group (with negatives)" if pkl_dir else "annotated only"
        return self.model_copy(update={"pkl_dir": pkl_dir, "pairs": pairs})

    def companions(self) -> list[Path]:
        return [self.pkl_dir / "sentences.pkl", self.pkl_dir / "groups.pkl"] if self.pkl_dir else []

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path, content_sha256: str, images=None) -> int:
        return stage_d3(con, path, content_sha256, pkl_dir=self.pkl_dir)
