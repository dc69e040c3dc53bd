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
from functools import lru_cache

import numpy as np

IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = 100
AREA_MAX = 1e5**2
_MATCH_THRS = np.minimum(IOU_THRS, 1 - 1e-10)
# Budget of padded cells (groups x detections x GT) per vectorised chunk.
_CHUNK_CELLS = 400_000


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


def _rank_within(group: np.ndarray, n_groups: int) -> np.ndarray:
    """Position of each element among the elements of its group, in input order."""
    order = np.argsort(group, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(group, minlength=n_groups))[:-1]])
    rank = np.empty(len(group), np.int64)
    rank[order] = np.arange(len(group)) - starts[group[order]]
    return rank


def _plan_chunks(nd: np.ndarray, ng: np.ndarray) -> list[np.ndarray]:
    """Groups bucketed by detection count, cut to fit the cell budget."""
    chunks = []
    for d in np.unique(nd):
        members = np.flatnonzero(nd == d)
        members = members[np.argsort(ng[members], kind="stable")]
        d_eff = max(int(d), 1)
        start = 0
        while start < len(members):
            g_max = max(int(ng[members[-1]]), 1)  # upper bound for the rest of this bucket
            rows = max(1, _CHUNK_CELLS // (d_eff * g_max))
            chunks.append(members[start : start + rows])
            start += rows
    return chunks


def _scatter(chunk_of: np.ndarray, local: np.ndarray, rank: np.ndarray, boxes: np.ndarray, n_chunks: int):
    """Per chunk: (local group index, rank, box) of the elements it holds."""
    order = np.argsort(chunk_of, kind="stable")
    bounds = np.searchsorted(chunk_of[order], np.arange(n_chunks + 1))
    for k in range(n_chunks):
        sel = order[bounds[k] : bounds[k + 1]]
        yield local[sel], rank[sel], boxes[sel]


def coco_ap_flat(
    n_cases: int,
    gt_case: np.ndarray,
    gt_label: np.ndarray,
    gt_box: np.ndarray,
    dt_case: np.ndarray,
    dt_label: np.ndarray,
    dt_box: np.ndarray,
    max_dets: int = MAX_DETS,
) -> tuple[np.ndarray, np.ndarray]:
    """(mAP@[.5:.95], AP50) per case from flat arrays; NaN where a case has no GT.

    ``*_case`` index the case, ``*_label`` are integer label ids (equal ids =
    same category), boxes are xyxy; detections are in answer order. ``max_dets`` caps detections per case and
    category (COCOeval's maxDets).
    """
    gt_case, gt_label = np.asarray(gt_case, np.int64), np.asarray(gt_label, np.int64)
    dt_case, dt_label = np.asarray(dt_case, np.int64), np.asarray(dt_label, np.int64)
    g_xywh, d_xywh = _xywh(gt_box), _xywh(dt_box)
    g_area = g_xywh[:, 2] * g_xywh[:, 3]
    ok = (g_area > 0) & (g_area <= AREA_MAX)
    gt_case, gt_label, g_xywh = gt_case[ok], gt_label[ok], g_xywh[ok]
    nan = np.full(n_cases, np.nan)
    if len(gt_case) == 0:
        return nan, nan.copy()

    n_labels = int(max(gt_label.max(initial=0), dt_label.max(initial=0))) + 1
    groups, g_group = np.unique(gt_case * n_labels + gt_label, return_inverse=True)
    n_groups = len(groups)
    d_key = dt_case * n_labels + dt_label
    pos = np.minimum(np.searchsorted(groups, d_key), n_groups - 1)
    keep = groups[pos] == d_key  # detections of labels absent from the GT play no part
    d_group, d_xywh = pos[keep], d_xywh[keep]
    d_rank = _rank_within(d_group, n_groups)
    under_cap = d_rank < max_dets
    d_group, d_xywh, d_rank = d_group[under_cap], d_xywh[under_cap], d_rank[under_cap]
    g_rank = _rank_within(g_group, n_groups)
    nd = np.bincount(d_group, minlength=n_groups)
    ng = np.bincount(g_group, minlength=n_groups)

    chunks = _plan_chunks(nd, ng)
    chunk_id = np.empty(n_groups, np.int64)
    local = np.empty(n_groups, np.int64)
    for k, members in enumerate(chunks):
        chunk_id[members] = k
        local[members] = np.arange(len(members))
    prec = np.empty((n_groups, len(IOU_THRS)))
    gts = _scatter(chunk_id[g_group], local[g_group], g_rank, g_xywh, len(chunks))
    dts = _scatter(chunk_id[d_group], local[d_group], d_rank, d_xywh, len(chunks))
    for members, (gl, gr, gb), (dl, dr, db) in zip(chunks, gts, dts):
        c, g_max, d_max = len(members), max(int(ng[members].max()), 1), max(int(nd[members].max()), 1)
        gt = np.zeros((c, g_max, 4))
        dt = np.zeros((c, d_max, 4))
        g_valid = np.zeros((c, g_max), bool)
        d_valid = np.zeros((c, d_max), bool)
        gt[gl, gr], g_valid[gl, gr] = gb, True
        dt[dl, dr], d_valid[dl, dr] = db, True
        prec[members] = _precision(gt, g_valid, dt, d_valid)

    owners = groups // n_labels
    counts = np.bincount(owners, minlength=n_cases).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        m_ap = np.bincount(owners, weights=prec.mean(1), minlength=n_cases) / counts
        ap50 = np.bincount(owners, weights=prec[:, 0], minlength=n_cases) / counts
    return m_ap, ap50


def _precision(gt: np.ndarray, g_valid: np.ndarray, dt: np.ndarray, d_valid: np.ndarray) -> np.ndarray:
    """Precision per group and IoU threshold, shape (groups, T), from padded xywh arrays."""
    c, g_max, _ = gt.shape
    d_max = dt.shape[1]
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
    tp = matched & counted
    tp_count = np.cumsum(tp, axis=-1)
    tp_sum = tp_count.astype(np.float64)
    fp_sum = np.cumsum(~matched & counted, axis=-1).astype(np.float64)
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    envelope = np.maximum.accumulate(pr[..., ::-1], axis=-1)[..., ::-1]
    # Recall only rises at true positives, so COCOeval's precision at recall
    # threshold r is the envelope at the k-th TP, k = the least k with
    # k / n_gt >= r (k = 0: the first detection). best[k] holds that value;
    # recall levels never reached keep 0, as in COCOeval.
    best = np.zeros((c, t, g_max + 1))
    best[:, :, 0] = envelope[:, :, 0]
    ci, ti, di = np.nonzero(tp)
    best[ci, ti, tp_count[ci, ti, di]] = envelope[ci, ti, di]
    weights = _recall_weights(g_max)[n_gt.astype(np.int64)]  # (c, g_max + 1)
    return np.einsum("ctk,ck->ct", best, weights) / len(REC_THRS)


@lru_cache(maxsize=None)
def _recall_weights(g_max: int) -> np.ndarray:
    """w[n, k]: how many of the 101 recall thresholds first reach recall k / n.

    Computed with COCOeval's own float comparison (``rc = tp / npig`` against
    ``recThrs``, searchsorted 'left'), so threshold edges land identically.
    """
    w = np.zeros((g_max + 1, g_max + 1))
    for n in range(1, g_max + 1):
        recalls = np.arange(n + 1, dtype=np.float64) / np.float64(n)
        first_k = np.searchsorted(recalls, REC_THRS, side="left")
        w[n] = np.bincount(first_k, minlength=g_max + 1)[: g_max + 1]
    return w


def coco_ap(cases: list[Case]) -> tuple[np.ndarray, np.ndarray]:
    """(mAP@[.5:.95], AP50) per case; NaN where a case has no GT (COCOeval's -1)."""
    ids: dict[str, int] = {}
    gt_case, gt_label, dt_case, dt_label, gt_boxes, dt_boxes = [], [], [], [], [], []
    for i, case in enumerate(cases):
        gt_case += [i] * len(case.gt_labels)
        gt_label += [ids.setdefault(label, len(ids)) for label in case.gt_labels]
        dt_case += [i] * len(case.pred_labels)
        dt_label += [ids.setdefault(label, len(ids)) for label in case.pred_labels]
        gt_boxes.append(np.asarray(case.gt_boxes, np.float64).reshape(-1, 4))
        dt_boxes.append(np.asarray(case.pred_boxes, np.float64).reshape(-1, 4))
    stack = lambda parts: np.concatenate(parts) if parts else np.zeros((0, 4))  # noqa: E731
    return coco_ap_flat(len(cases), gt_case, gt_label, stack(gt_boxes), dt_case, dt_label, stack(dt_boxes))
