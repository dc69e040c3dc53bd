"""What the fast rewards are checked against: reference implementations and adversarial inputs.

``coco_ap_reference`` builds a pycocotools ``COCO`` and ``COCOeval`` for one
image, as VLM-R1's OVD reward does per completion. Tests assert our batched
kernel equals it; ``benchmarks/rewards.py`` times the two side by side.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from vlmr1.answers import normalize_label


def coco_ap_reference(gt_labels, gt_boxes, pred_labels, pred_boxes) -> tuple[float, float]:
    """(mAP, AP50) by pycocotools for one image; NaN when there is no GT."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    if len(gt_labels) == 0:
        return float("nan"), float("nan")
    cat_ids: dict[str, int] = {}
    for label in gt_labels:
        cat_ids.setdefault(label, len(cat_ids) + 1)
    anns = []
    for k, (label, (x1, y1, x2, y2)) in enumerate(zip(gt_labels, gt_boxes)):
        w, h = x2 - x1, y2 - y1
        anns.append(
            {
                "id": k + 1,
                "image_id": 1,
                "category_id": cat_ids[label],
                "bbox": [x1, y1, w, h],
                "area": w * h,
                "iscrowd": 0,
            }
        )
    dets = [
        {"image_id": 1, "category_id": cat_ids[label], "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 1.0}
        for label, (x1, y1, x2, y2) in zip(pred_labels, pred_boxes)
        if label in cat_ids
    ]
    if not dets:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": [{"id": 1, "width": 1, "height": 1}],
            "annotations": anns,
            "categories": [{"id": i, "name": n} for n, i in cat_ids.items()],
        }
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def adversarial_completions(n_chars: int) -> list[str]:
    """Completions of ``n_chars`` shaped to make naive parsers slow (backtracking, deep nesting, repair)."""
    shapes = [
        "<think>" + "[1," * (n_chars // 3),
        "<answer>" + "[" * n_chars,
        "<think></think><answer>" + "{" * (n_chars // 2) + "</answer>",
        "<think>x</think><answer>[" + "9" * n_chars + ",1,1,1]</answer>",
        "<think>x</think><answer>" + '{"bbox_2d": [1, 2, 3, 4], "label": "cat"},' * (n_chars // 42) + "</answer>",
        "</think>" * (n_chars // 8),
        "<think>x</think><answer>```json\n[" + '{"bbox_2d": [1, 2, 3, 4], "label": "c' * (n_chars // 40),
    ]
    return [s[:n_chars] for s in shapes]


def coco_map_reference(
    gts: list[list[tuple[str, tuple]]], dts: list[list[tuple[str, tuple]]]
) -> tuple[float | None, float | None]:
    """pycocotools' dataset-level (mAP@[.5:.95], AP50), one COCOeval over all images: ``gts[i]`` / ``dts[i]`` are
    (label, xyxy) lists of image i."""
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
            anns.append(
                {
                    "id": k,
                    "image_id": i + 1,
                    "category_id": cat[normalize_label(lbl)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": v, "name": k_} for k_, v in cat.items()],
    }
    gt.createIndex()
    dets = [
        {"image_id": i + 1, "category_id": cat[normalize_label(lbl)], "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 1.0}
        for i, d in enumerate(dts)
        for lbl, (x1, y1, x2, y2) in d
        if normalize_label(lbl) in cat
    ]
    if not dets:
        return 0.0, 0.0
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(max(ev.stats[0], 0.0)), float(max(ev.stats[1], 0.0))
