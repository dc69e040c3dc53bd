"""COCO box AP for many single-image cases at once, equal to pycocotools' COCOeval.

VLM-R1 scores each OVD completion by building a ``COCO`` + ``COCOeval`` per
completion (milliseconds each, most of it Python bookkeeping). This module
computes the same numbers for a whole batch with numpy: every
(case, category) pair is a *group*; groups of similar size are padded into
one array and matched together, one detection rank at a time, for all ten
IoU thresholds at once.

Semantics mirrored from COCOeval (single image, ``areaRng='all'``,
``maxDets=100``, ``useCats=1``):
- detections all have score 1.0, so their order is the answer's order
  (COCOeval sorts with a stable mergesort); at most 100 per category;
- greedy matching per threshold: a detection takes the unmatched GT with the
  highest IoU >= threshold, ties going to the later GT;
- IoU on xywh boxes with ``x + w`` recomputed, as pycocotools' C code does;
- an unmatched detection with area outside ``[0, 1e10]`` is ignored;
- precision envelope, 101 recall points, ``np.spacing(1)`` in the denominator;
- categories without GT do not count; predictions of such labels are ignored
  (the length penalty in ``rewards`` is what charges for them).

GT boxes must have positive area below 1e10 px² (``records`` validates
this); others are dropped here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = 100
AREA_MAX = 1e5**2
_MATCH_THRS = np.minimum(IOU_THRS, 1 - 1e-10)
# Budget of padded cells (groups x detections x GT) per vectorised chunk.
_CHUNK_CELLS = 400_000
_CHUNK_DET_ROWS = 16_000  # groups x detections, bounds the recall-threshold search


@dataclass(frozen=True)
class Case:
    """One image: GT and predicted (label, xyxy box) lists. Labels compare exactly."""

    gt_labels: list[str]
    gt_boxes: np.ndarray  # (g, 4) xyxy
    pred_labels: list[str]
    pred_boxes: np.ndarray  # (d, 4) xyxy


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def _groups(cases: list[Case]) -> tuple[list[int], list[np.ndarray], list[np.ndarray]]:
    owners, gts, dts = [], [], []
    for i, case in enumerate(cases):
        if not case.gt_labels:
            continue
        g_all = _xywh(case.gt_boxes)
        d_all = _xywh(case.pred_boxes)
        area = g_all[:, 2] * g_all[:, 3]
        by_label: dict[str, tuple[list[int], list[int]]] = {}
        for j, label in enumerate(case.gt_labels):
            if 0 < area[j] <= AREA_MAX:
                by_label.setdefault(label, ([], []))[0].append(j)
        for j, label in enumerate(case.pred_labels):
            entry = by_label.get(label)
            if entry is not None and len(entry[1]) < MAX_DETS:
                entry[1].append(j)
        for g_idx, d_idx in by_label.values():
            owners.append(i)
            gts.append(g_all[g_idx])
            dts.append(d_all[d_idx])
    return owners, gts, dts


def _chunks(order: np.ndarray, nd: np.ndarray, ng: np.ndarray):
    """Split groups (sorted by size) into chunks that fit the cell budget."""
    start = 0
    while start < len(order):
        d_max = g_max = 1
        end = start
        while end < len(order):
            k = order[end]
            d2, g2 = max(d_max, nd[k]), max(g_max, ng[k])
            rows = end - start + 1
            if end > start and (rows * d2 * g2 > _CHUNK_CELLS or rows * d2 > _CHUNK_DET_ROWS):
                break
            d_max, g_max, end = d2, g2, end + 1
        yield order[start:end], d_max, g_max
        start = end


def _precision(gts: list[np.ndarray], dts: list[np.ndarray], d_max: int, g_max: int) -> np.ndarray:
    """Precision per group and IoU threshold, shape (groups, T)."""
    c = len(gts)
    gt = np.zeros((c, g_max, 4))
    dt = np.zeros((c, d_max, 4))
    g_valid = np.zeros((c, g_max), bool)
    d_valid = np.zeros((c, d_max), bool)
    for k, (g, d) in enumerate(zip(gts, dts)):
        gt[k, : len(g)] = g
        dt[k, : len(d)] = d
        g_valid[k, : len(g)] = True
        d_valid[k, : len(d)] = True
    n_gt = g_valid.sum(1).astype(np.float64)

    # IoU (c, d, g) the way pycocotools' bbIou computes it.
    dx, dy, dw, dh = (dt[:, :, None, i] for i in range(4))
    gx, gy, gw, gh = (gt[:, None, :, i] for i in range(4))
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    overlap = (w > 0) & (h > 0)
    inter = np.where(overlap, w * h, 0.0)
    union = np.where(overlap, dw * dh + gw * gh - inter, 1.0)
    iou = np.where(overlap, inter / union, 0.0)
    iou = np.where(g_valid[:, None, :] & d_valid[:, :, None], iou, -1.0)

    t = len(IOU_THRS)
    gt_taken = np.zeros((c, t, g_max), bool)
    matched = np.zeros((c, t, d_max), bool)
    rows = np.arange(c)[:, None]
    cols = np.arange(t)[None, :]
    for d in range(d_max):
        iou_d = np.broadcast_to(iou[:, d, None, :], (c, t, g_max))
        masked = np.where(~gt_taken & (iou_d >= _MATCH_THRS[None, :, None]), iou_d, -1.0)
        last_best = g_max - 1 - masked[..., ::-1].argmax(-1)  # ties -> later GT
        hit = np.take_along_axis(masked, last_best[..., None], -1)[..., 0] >= 0
        matched[:, :, d] = hit
        gt_taken[rows, cols, last_best] |= hit

    area = dt[:, :, 2] * dt[:, :, 3]
    out_of_range = (area < 0) | (area > AREA_MAX)
    counted = d_valid[:, None, :] & ~(~matched & out_of_range[:, None, :])
    tp_sum = np.cumsum(matched & counted, axis=-1).astype(np.float64)
    fp_sum = np.cumsum(~matched & counted, axis=-1).astype(np.float64)
    rc = tp_sum / n_gt[:, None, None]
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    envelope = np.maximum.accumulate(pr[..., ::-1], axis=-1)[..., ::-1]
    first = (rc[..., None] < REC_THRS).sum(axis=-2)  # == searchsorted(rc, r, 'left')
    q = np.take_along_axis(envelope, np.minimum(first, d_max - 1), -1)
    q = np.where(first < d_max, q, 0.0)
    return q.mean(-1)


def coco_ap(cases: list[Case]) -> tuple[np.ndarray, np.ndarray]:
    """(mAP@[.5:.95], AP50) per case; NaN where a case has no GT (COCOeval's -1)."""
    n = len(cases)
    owners, gts, dts = _groups(cases)
    if not owners:
        return np.full(n, np.nan), np.full(n, np.nan)
    nd = np.array([len(d) for d in dts])
    ng = np.array([len(g) for g in gts])
    order = np.lexsort((ng, nd))
    prec = np.empty((len(owners), len(IOU_THRS)))
    for idx, d_max, g_max in _chunks(order, nd, ng):
        prec[idx] = _precision([gts[k] for k in idx], [dts[k] for k in idx], int(d_max), int(g_max))
    owners_arr = np.asarray(owners)
    counts = np.bincount(owners_arr, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        m_ap = np.bincount(owners_arr, weights=prec.mean(1), minlength=n) / counts
        ap50 = np.bincount(owners_arr, weights=prec[:, 0], minlength=n) / counts
    return m_ap, ap50
