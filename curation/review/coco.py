"""A scorer's rollouts as COCO detection results and the labels as COCO ground truth.

So the field's own tools open them unchanged: pycocotools (``COCO(gt).loadRes(results)``, ``COCOeval``),
FiftyOne's COCO importer, cleanlab's object-detection label quality. One COCO image per sample (a REC sample's
expression makes it a question of its own, even on a shared picture), its ``file_name`` the sample's image key
and ``sample_id`` kept beside it. REC labels and answers get the category ``referent``; OVD their own labels. A
detection's ``score`` is the share of the sample's answers that agree with it (same category, IoU >= 0.5): the
policy's confidence, as a detector would give it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from curation import catalog
from curation.difficulty.label_quality import scorer_reading
from vlmr1.boxes import iou_matrix
from vlmr1.records import parse_solution
from vlmr1.rewards import read_boxes

REFERENT = "referent"


def _xywh(b) -> list[float]:
    return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]


def answer_confidences(answers: list[list]) -> list[list[float]]:
    """Per answer, per detection: the share of answers holding a same-label box at IoU >= 0.5 with it."""
    out = []
    for dets in answers:
        row = []
        for d in dets:
            agree = sum(
                any(o.label == d.label and iou_matrix(np.array([o.bbox]), np.array([d.bbox]))[0, 0] >= 0.5
                    for o in other)
                for other in answers
            )  # fmt: skip
            row.append(agree / max(len(answers), 1))
        out.append(row)
    return out


def write_coco(catalog_path: str | Path, scorer: str, out: Path, sample_ids: list[str] | None = None) -> dict:
    """``labels.json`` (ground truth) and ``rollouts.json`` (results) under ``out`` for the scorer's samples."""
    out.mkdir(parents=True, exist_ok=True)
    cats: dict[str, int] = {REFERENT: 1}
    images, anns, results = [], [], []
    with catalog.read_only(catalog_path) as con:
        dialect, frame = scorer_reading(con, scorer)
        where = "" if sample_ids is None else "AND s.sample_id IN (SELECT unnest($ids))"
        rows = con.execute(
            f"""SELECT s.sample_id, s.task, s.image_key, s.width, s.height, s.solution,
                list(r.completion ORDER BY r.k_index) FROM samples s JOIN rollouts r USING (sample_id)
            WHERE r.scorer_key = $key {where} GROUP BY ALL ORDER BY s.sample_id""",
            {"key": scorer} | ({} if sample_ids is None else {"ids": sample_ids}),
        ).fetchall()
    for image_id, (sid, task, key, w, h, solution, texts) in enumerate(rows, start=1):
        images.append({"id": image_id, "file_name": key, "width": w, "height": h, "sample_id": sid})
        for t in parse_solution(solution):
            cat = cats.setdefault(REFERENT if task == "rec" else t.label, len(cats) + 1)
            box = _xywh(t.bbox)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
        answers = [a for a in (read_boxes(dialect, task, c, frame, w, h) for c in texts) if a is not None]
        for dets, conf in zip(answers, answer_confidences(answers)):
            for d, score in zip(dets, conf):
                cat = cats.setdefault(REFERENT if task == "rec" else d.label, len(cats) + 1)
                results.append({"image_id": image_id, "category_id": cat, "bbox": _xywh(d.bbox), "score": score})
    categories = [{"id": i, "name": n, "supercategory": "vlmr1"} for n, i in cats.items()]
    gt = {"info": {"description": f"labels of the samples scorer {scorer} scored"}, "images": images,
          "annotations": anns, "categories": categories}  # fmt: skip
    paths = {"coco labels": out / "labels.json", "coco rollouts": out / "rollouts.json"}
    paths["coco labels"].write_text(json.dumps(gt))
    paths["coco rollouts"].write_text(json.dumps(results))
    return {k: str(v) for k, v in paths.items()} | {"detections": len(results), "images": len(images)}
