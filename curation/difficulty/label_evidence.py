"""What k answers of the policy say about one label: plain functions of boxes, no catalog.

A label is suspect when the answers agree with each other and not with it. The answers are the rollouts the
difficulty stage stored (``curation.difficulty.label_quality`` reads them), already in original pixels.

REC: the answers are clustered (IoU >= ``cluster_iou`` with the cluster's seed, the answer with the most such
neighbours); ``agreement`` is the cluster's share of all k answers (an unparsed answer never agrees), the
``consensus`` the coordinate-wise median of its boxes. ``support`` is the share of answers that hit the label
(IoU >= 0.5), ``consensus_iou`` the consensus against the label, ``other_iou`` the consensus against the best
other annotated object of the image (the referent the policy found instead). Score: ``agreement * (1 -
consensus_iou)``: how many answers agree, times how far their consensus is from the label; chosen on
``benchmarks/label_errors.py`` (docs/quality.md has the comparison; weighting by ``1 - support`` as well lost every
inaccurate box whose IoU with the truth is above 0.5).

OVD, per ground-truth box: ``hits`` (share of parsed answers with a same-label box at IoU >= 0.5). Answers'
boxes that match no label of their category are clustered across answers; a cluster found in at least
``consistent`` of them is an object the answers see and the labels do not. A label that is missed while such a
cluster of its category overlaps it is in a **bad location**; a cluster overlapping no label is an
**overlooked** object; a label missed while the image's other labels are found is **never predicted**. The
sample's score is the largest of its parts.

Fewer than ``min_parsed`` of the k answers parsing gives no score: "unknown", never "wrong".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlmr1.answers import Detection
from vlmr1.boxes import iou_matrix


@dataclass(frozen=True)
class LabelEvidenceConfig:
    """How answers are compared. Part of the label-quality version: a change recomputes every score."""

    cluster_iou: float = 0.5  # answers within this IoU of the seed are one answer
    hit_iou: float = 0.5  # an answer hits a label at this IoU (Acc@0.5)
    min_parsed: float = 0.5  # under this share of the k answers parsing, the verdict is "unknown"
    consistent: float = 0.5  # share of answers that makes an unlabelled cluster an object the policy sees


def _cluster(boxes: np.ndarray, iou: float, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Members (bool mask) of the largest cluster and its median box. ``weights``: what a member counts (OVD:
    one per answer, not per box)."""
    near = iou_matrix(boxes, boxes) >= iou
    size = near.sum(1) if weights is None else (near * weights[None, :]).sum(1)
    members = near[int(np.argmax(size))]
    return members, np.median(boxes[members], axis=0)


def rec_evidence(answers: list[list[Detection] | None], label, others, cfg: LabelEvidenceConfig) -> dict:
    """One REC sample: ``answers`` (k, None where unparsed), the label's box, the image's other boxes (m, 4)."""
    k = len(answers)
    boxes = np.array([a[0].bbox for a in answers if a], dtype=np.float64).reshape(-1, 4)
    out = {"k": k, "parsed": len(boxes), "agreement": None, "support": None, "consensus_iou": None,
           "other_iou": None, "consensus": None, "score": None}  # fmt: skip
    if k == 0 or len(boxes) < cfg.min_parsed * k:
        return out
    label = np.asarray(label, dtype=np.float64).reshape(1, 4)
    members, consensus = _cluster(boxes, cfg.cluster_iou)
    agreement = members.sum() / k
    support = float((iou_matrix(boxes, label)[:, 0] >= cfg.hit_iou).sum() / k)
    consensus_iou = float(iou_matrix(consensus[None], label)[0, 0])
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4)
    other_iou = float(iou_matrix(consensus[None], others).max()) if len(others) else None
    score = agreement * (1.0 - consensus_iou)
    parts = {"agreement": float(agreement), "support": support, "consensus_iou": consensus_iou}
    return out | parts | {"other_iou": other_iou, "consensus": [float(v) for v in consensus], "score": float(score)}


def _unlabelled_clusters(answers: list[list[Detection]], targets, cfg: LabelEvidenceConfig) -> list[dict]:
    """Clusters of answer boxes that hit no label of their category, found in >= ``consistent`` of the answers."""
    loose: dict[str, list[tuple[int, tuple]]] = {}
    for i, dets in enumerate(answers):
        for d in dets:
            truth = np.array([t.bbox for t in targets if t.label == d.label], dtype=np.float64).reshape(-1, 4)
            if not len(truth) or iou_matrix(np.array([d.bbox]), truth).max() < cfg.hit_iou:
                loose.setdefault(d.label, []).append((i, d.bbox))
    clusters = []
    for label, items in loose.items():
        owners, boxes = np.array([o for o, _ in items]), np.array([b for _, b in items], dtype=np.float64)
        while len(boxes):
            members, box = _cluster(boxes, cfg.cluster_iou, 1.0 / np.bincount(owners)[owners])
            share = len(set(owners[members].tolist())) / len(answers)
            if share < cfg.consistent:
                break
            clusters.append({"label": label, "box": [float(v) for v in box], "share": share})
            owners, boxes = owners[~members], boxes[~members]
    return clusters


def ovd_evidence(answers: list[list[Detection] | None], targets, cfg: LabelEvidenceConfig) -> tuple[dict, list[dict]]:
    """One OVD sample: the sample's parts and score, and one row per label box and per overlooked object."""
    k, parsed = len(answers), [a for a in answers if a is not None]
    sample = {"k": k, "parsed": len(parsed), "score": None}
    if k == 0 or len(parsed) < cfg.min_parsed * k:
        return sample, []
    hits = []
    for t in targets:
        found = 0
        for dets in parsed:
            same = np.array([d.bbox for d in dets if d.label == t.label], dtype=np.float64).reshape(-1, 4)
            found += bool(len(same)) and iou_matrix(same, np.array([t.bbox])).max() >= cfg.hit_iou
        hits.append(float(found) / len(parsed))
    clusters = _unlabelled_clusters(parsed, targets, cfg)
    rows, claimed = [], set()
    for i, (t, hit) in enumerate(zip(targets, hits)):
        rest = [h for j, h in enumerate(hits) if j != i]
        near = [(iou_matrix(np.array([c["box"]]), np.array([t.bbox]))[0, 0], n) for n, c in enumerate(clusters)
                if c["label"] == t.label]  # fmt: skip
        overlap, n = max(near, default=(0.0, -1))
        if overlap > 0 and hit < cfg.consistent:
            kind, score = "bad_location", (1 - hit) * clusters[n]["share"]
            claimed.add(n)
        elif rest and hit == 0:
            kind, score = "never_predicted", float(np.mean(rest))
        else:
            kind, score = "ok", (1 - hit) * (float(np.mean(rest)) if rest else 0.0)
        rows.append({"box_index": i, "label": t.label, "box": list(t.bbox), "kind": kind, "hits": hit,
                     "score": float(score)})  # fmt: skip
    for n, c in enumerate(clusters):
        if n not in claimed:
            rows.append({"box_index": None, "label": c["label"], "box": c["box"], "kind": "overlooked",
                         "hits": c["share"], "score": float(c["share"])})  # fmt: skip
    sample["score"] = max((r["score"] for r in rows), default=0.0)
    return sample, rows
