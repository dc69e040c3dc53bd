"""Label quality from the rollouts a scorer stored: no extra generation (``label_evidence`` says how).

For a scorer key, every scored sample's k completions are read in the scorer's dialect and frame (the boxes its
rewards saw, in original pixels), compared with each other and with the label, and written to ``label_quality``
(and, for OVD, ``label_quality_boxes``). Rows carry the version of what computed them; a sample is computed once
per version, so the score stage can call this after every run and pay only for what is new.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import duckdb
import pyarrow as pa

from curation import catalog
from curation.difficulty.label_evidence import LabelEvidenceConfig, ovd_evidence, rec_evidence
from curation.quality.rules import BUILTIN
from vlmr1.boxes import BoxFrame
from vlmr1.records import parse_solution
from vlmr1.rewards import DEFAULT_DIALECT, read_boxes

SUSPECT = BUILTIN["suspect_label"].params["min_score"]  # from which reports count and show a label as suspect
CHUNK = 2000  # samples read and written per round trip
_VERSION = 1


def version(cfg: LabelEvidenceConfig) -> str:
    return hashlib.sha256(json.dumps([_VERSION, asdict(cfg)]).encode()).hexdigest()[:12]


def scorer_reading(con: duckdb.DuckDBPyConnection, scorer_key: str) -> tuple[str, BoxFrame]:
    """The dialect and box frame a scorer's rewards read its completions in."""
    row = con.execute("SELECT spec FROM scorers WHERE scorer_key = ?", [scorer_key]).fetchone()
    if row is None:
        raise ValueError(f"no scorer {scorer_key} in this catalog; `vlmr1 catalog` lists the scorers")
    spec = json.loads(row[0])
    fam = spec["family"]
    frame = BoxFrame(fam["frame"], min_pixels=fam["min_pixels"], max_pixels=fam["max_pixels"], factor=fam["factor"])
    return spec.get("dialect", DEFAULT_DIALECT), frame


_TODO = """SELECT d.sample_id FROM difficulty d WHERE d.scorer_key = $key AND d.sample_id NOT IN
    (SELECT sample_id FROM label_quality WHERE scorer_key = $key AND version = $version) ORDER BY d.sample_id"""

_SAMPLES = """SELECT s.sample_id, s.task, s.width, s.height, s.solution, s.file_id, s.image_id, s.ann_id,
        s.image_key, s.source FROM samples s WHERE s.sample_id IN (SELECT unnest($ids))"""

_ROLLOUTS = """SELECT sample_id, list(completion ORDER BY k_index) FROM rollouts
    WHERE scorer_key = $key AND sample_id IN (SELECT unnest($ids)) GROUP BY sample_id"""

# The other objects of a REC sample's image: its source's annotations, and other REC samples' label boxes there
# (a VLM-R1 jsonl source has no annotation table).
_OTHERS = """WITH mine AS (SELECT * FROM samples WHERE sample_id IN (SELECT unnest($ids)) AND task = 'rec')
    SELECT m.sample_id, list([a.x1, a.y1, a.x2, a.y2]) FROM mine m JOIN annotations a
        ON a.file_id = m.file_id AND a.image_id = m.image_id AND a.ann_id IS DISTINCT FROM m.ann_id AND NOT a.iscrowd
        GROUP BY m.sample_id
    UNION ALL
    SELECT m.sample_id, list(from_json(o.solution, '[{"bbox": "DOUBLE[]"}]')[1].bbox) FROM mine m JOIN samples o
        ON o.source = m.source AND o.image_key = m.image_key AND o.task = 'rec' AND o.solution <> m.solution
        GROUP BY m.sample_id"""


def stored_completions(con: duckdb.DuckDBPyConnection, scorer_key: str, ids: list[str]) -> dict[str, list[str]]:
    """sample_id -> the k completions the scorer stored, in k order (the one read of rollouts for labels)."""
    return dict(con.execute(_ROLLOUTS, {"key": scorer_key, "ids": ids}).fetchall())


def compute(catalog_path: str | Path, scorer_key: str, cfg: LabelEvidenceConfig | None = None) -> dict:
    """Label quality for every sample scored under ``scorer_key`` and not yet computed by this version."""
    cfg = cfg or LabelEvidenceConfig()
    ver = version(cfg)
    done = {"computed": 0, "unknown": 0, "suspect": 0}
    with catalog.connect(catalog_path) as con:
        dialect, frame = scorer_reading(con, scorer_key)
        todo = [r[0] for r in con.execute(_TODO, {"key": scorer_key, "version": ver}).fetchall()]
        for start in range(0, len(todo), CHUNK):
            ids = todo[start : start + CHUNK]
            samples, boxes = _evidence(con, scorer_key, ids, dialect, frame, cfg)
            _write(con, scorer_key, ids, samples, boxes, ver)
            done["computed"] += len(samples)
            done["unknown"] += sum(s["score"] is None for s in samples)
        done["suspect"] = con.execute(
            "SELECT count(*) FROM label_quality WHERE scorer_key = ? AND score >= ?", [scorer_key, SUSPECT]
        ).fetchone()[0]
    return done


def _evidence(con, key: str, ids: list[str], dialect: str, frame: BoxFrame, cfg) -> tuple[list[dict], list[dict]]:
    completions = stored_completions(con, key, ids)
    others: dict[str, list] = {}
    for sid, found in con.execute(_OTHERS, {"ids": ids}).fetchall():
        others.setdefault(sid, []).extend(b for b in found if b and len(b) == 4)
    samples, boxes = [], []
    for sid, task, w, h, solution, *_ in con.execute(_SAMPLES, {"ids": ids}).fetchall():
        answers = [read_boxes(dialect, task, c, frame, w, h) for c in completions.get(sid, [])]
        targets = parse_solution(solution)
        base = {"scorer_key": key, "sample_id": sid, "task": task}
        if task == "rec":
            ev = rec_evidence(answers, targets[0].bbox, others.get(sid, []), cfg)
            samples.append(base | ev | {"worst": None})
            continue
        ev, rows = ovd_evidence(answers, targets, cfg)
        worst = max(rows, key=lambda r: r["score"], default=None)
        samples.append(base | ev | {"worst": worst["kind"] if worst and worst["score"] > 0 else None})
        for r in rows:
            x1, y1, x2, y2 = r.pop("box")
            boxes.append({"scorer_key": key, "sample_id": sid, **r, "x1": x1, "y1": y1, "x2": x2, "y2": y2})
    return samples, boxes


_SAMPLE_COLUMNS = ("scorer_key", "sample_id", "task", "k", "parsed", "score", "agreement", "support",
                   "consensus_iou", "other_iou", "consensus", "worst")  # fmt: skip
_BOX_SCHEMA = pa.schema(
    [("scorer_key", pa.string()), ("sample_id", pa.string()), ("box_index", pa.int32()), ("label", pa.string()),
     ("x1", pa.float64()), ("y1", pa.float64()), ("x2", pa.float64()), ("y2", pa.float64()),
     ("kind", pa.string()), ("hits", pa.float64()), ("score", pa.float64())]
)  # fmt: skip


def _write(con, key: str, ids: list[str], samples: list[dict], boxes: list[dict], ver: str) -> None:
    """One transaction per chunk: an older version's rows of these samples replaced."""
    table = pa.Table.from_pylist([{c: s.get(c) for c in _SAMPLE_COLUMNS} | {"version": ver} for s in samples])
    with catalog.transaction(con):
        for name in ("label_quality", "label_quality_boxes"):
            con.execute(f"DELETE FROM {name} WHERE scorer_key = $key AND sample_id IN (SELECT unnest($ids))",
                        {"key": key, "ids": ids})  # fmt: skip
        if samples:
            with catalog.registered(con, "_lq", table):
                con.execute("INSERT INTO label_quality BY NAME SELECT * FROM _lq")
        if boxes:
            with catalog.registered(con, "_lqb", pa.Table.from_pylist(boxes, schema=_BOX_SCHEMA)):
                con.execute("INSERT INTO label_quality_boxes BY NAME SELECT * FROM _lqb")


def newest_with_labels(catalog_path: str | Path) -> str | None:
    """The newest scorer that has label quality, or None."""
    with catalog.read_only(catalog_path) as con:
        found = con.execute(
            "SELECT s.scorer_key FROM scorers s WHERE s.scorer_key IN (SELECT scorer_key FROM label_quality) "
            "ORDER BY s.created_at DESC LIMIT 1"
        ).fetchall()
    return found[0][0] if found else None
