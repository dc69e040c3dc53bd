"""Evaluation with greedy decoding through the same rollout engines and family adapter as scoring.

REC: Acc@0.5 and mean IoU per split. OVD: dataset-level COCO mAP and AP50
through pycocotools over all images of a split at once (one COCO dataset,
one COCOeval), not an average of per-image scores. VLM answers carry no
confidence, so every predicted box scores 1.0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vlmr1.answers import answer_text, normalize_label, parse_ovd
from vlmr1.families import Family
from vlmr1.prompts import build_messages
from vlmr1.records import parse_solution
from vlmr1.rewards import RewardBatch, score
from vlmr1.rollout.base import Engine, Request, Sampling


def rows_from_shards(path: str | Path) -> list[dict]:
    from vlmr1.shards import load_table

    table, _ = load_table(path)
    return [{"task": r["task"], "problem": r["problem"], "solution": r["solution"], "width": r["width"], "height": r["height"],
             "split": f"{r['source']}:{r['split']}", "image": r["image"]["path"], "image_bytes": r["image"]["bytes"], "sample_id": r["sample_id"]}
            for r in table.to_pylist()]


def coco_map(gts: list[list[tuple[str, tuple]]], dts: list[list[tuple[str, tuple]]]) -> tuple[float | None, float | None]:
    """Dataset-level (mAP@[.5:.95], AP50) over all images: ``gts[i]`` / ``dts[i]`` are (label, xyxy) lists of image i."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    labels = sorted({normalize_label(lbl) for g in gts for lbl, _ in g})
    if not labels:
        return None, None
    cat = {lbl: i + 1 for i, lbl in enumerate(labels)}
    images = [{"id": i + 1, "width": 1, "height": 1} for i in range(len(gts))]
    anns, k = [], 0
    for i, g in enumerate(gts):
        for lbl, (x1, y1, x2, y2) in g:
            k += 1
            anns.append({"id": k, "image_id": i + 1, "category_id": cat[normalize_label(lbl)], "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": v, "name": k_} for k_, v in cat.items()]}
    gt.createIndex()
    dets = [{"image_id": i + 1, "category_id": cat[normalize_label(lbl)], "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 1.0}
            for i, d in enumerate(dts) for lbl, (x1, y1, x2, y2) in d if normalize_label(lbl) in cat]
    if not dets:
        return 0.0, 0.0
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(max(ev.stats[0], 0.0)), float(max(ev.stats[1], 0.0))


def _image(row: dict):
    import io

    from PIL import Image

    if row.get("image_bytes"):
        return Image.open(io.BytesIO(row["image_bytes"])).convert("RGB")
    with Image.open(row["image"]) as img:
        return img.convert("RGB")


def evaluate(engine: Engine, rows: list[dict], *, template: str = "vlmr1", max_new_tokens: int = 256, batch: int = 32) -> dict:
    """Metrics per split (REC: acc@0.5, mean IoU; OVD: mAP, AP50), greedy decoding."""
    family: Family = engine.family
    frame = family.frame()
    completions: list[str] = []
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        requests = [Request([_image(r)], build_messages(r["task"], r["problem"], template)) for r in part]
        completions += [c[0].text for c in engine.generate(requests, Sampling(n=1, temperature=0.0, max_new_tokens=max_new_tokens))]
    rb = RewardBatch.build(completions, [r["solution"] for r in rows], [r["width"] for r in rows], [r["height"] for r in rows],
                           [r["task"] for r in rows], frame, None)
    iou, hit = score("iou", rb), score("hit@0.5", rb)
    out: dict = {}
    for split in sorted({r["split"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["split"] == split]
        rec = [i for i in idx if rows[i]["task"] == "rec"]
        ovd = [i for i in idx if rows[i]["task"] == "ovd"]
        if rec:
            out[f"{split}/rec"] = {"task": "rec", "n": len(rec), "acc@0.5": float(np.mean(hit[rec])), "mean_iou": float(np.mean(iou[rec]))}
        if ovd:
            gts = [[(t.label, t.bbox) for t in parse_solution(rows[i]["solution"])] for i in ovd]
            dts = []
            for i in ovd:
                ans = parse_ovd(answer_text(completions[i]))
                dets = ans.detections if ans is not None else ()
                boxes = frame.to_original([d.box for d in dets], rows[i]["width"], rows[i]["height"]) if dets else []
                dts.append([(d.label, tuple(b)) for d, b in zip(dets, boxes)])
            m, ap50 = coco_map(gts, dts)
            out[f"{split}/ovd"] = {"task": "ovd", "n": len(ovd), "mAP": m, "AP50": ap50}
    return {"metrics": out, "n": len(rows), "family": family.key(), "template": template}


def write_results(results: dict, checkpoint: str | Path, name: str) -> Path:
    path = Path(checkpoint) / "eval" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**results, "checkpoint": str(checkpoint), "data": name}, indent=2, sort_keys=True))
    return path
