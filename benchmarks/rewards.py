"""Batched rewards vs a per-completion implementation, side by side, same inputs.

The baseline is what VLM-R1 does: for each completion, parse it, then (OVD)
build a pycocotools COCO + COCOeval for that one image; (REC) compute IoU in
Python. It shares our parser, so the comparison isolates scoring. Values must
be identical; the table shows the largest difference.

    .venv/bin/python benchmarks/rewards.py [--n 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from vlmr1.answers import normalize_label, parse_ovd, parse_rec_box, split_tags
from vlmr1.boxes import BoxFrame
from vlmr1.rewards import RewardBatch, score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test kit: tests/kit
from kit.checks import adversarial_completions, coco_ap_reference  # noqa: E402

CATEGORIES = ["person", "car", "dog", "cat", "chair", "bottle", "cup", "bird"]
W, H = 640, 480


def _jitter(rng, box, scale):
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    d = rng.normal(0, scale, 4) * [w, h, w, h]
    return [round(float(v), 1) for v in (x1 + d[0], y1 + d[1], x2 + d[2], y2 + d[3])]


def _random_box(rng):
    x, y = rng.uniform(0, W - 40), rng.uniform(0, H - 40)
    return [
        round(x, 1),
        round(y, 1),
        round(min(W, x + rng.uniform(10, 200)), 1),
        round(min(H, y + rng.uniform(10, 200)), 1),
    ]


def make_rec(rng, n):
    comps, sols = [], []
    for _ in range(n):
        gt = _random_box(rng)
        pred = _jitter(rng, gt, rng.choice([0.02, 0.1, 0.4]))
        kind = rng.integers(0, 10)
        if kind == 0:
            answer = "I cannot find it."
        elif kind == 1:
            answer = f"The object is at {pred}."
        else:
            answer = json.dumps({"bbox_2d": pred, "label": "object"})
        comps.append(f"<think>The expression refers to the object near the centre.</think>\n<answer>{answer}</answer>")
        sols.append([{"label": "object", "bbox": gt}])
    return comps, sols


def make_ovd(rng, n):
    comps, sols = [], []
    for _ in range(n):
        cats = list(rng.choice(CATEGORIES, rng.integers(1, 4), replace=False))
        gts = [{"label": str(c), "bbox": _random_box(rng)} for c in cats for _ in range(rng.integers(0, 4))]
        preds = [{"bbox_2d": _jitter(rng, g["bbox"], 0.08), "label": g["label"]} for g in gts if rng.random() < 0.8]
        preds += [
            {"bbox_2d": _random_box(rng), "label": str(rng.choice(CATEGORIES))} for _ in range(rng.integers(0, 3))
        ]
        rng.shuffle(preds)
        kind = rng.integers(0, 20)
        if kind == 0:
            answer = "None"
        elif kind == 1:
            answer = json.dumps(preds)[:-5]  # truncated: repaired or refused
        else:
            answer = "```json\n" + json.dumps(preds) + "\n```"
        comps.append(f"<think>I scan the image for each phrase.</think>\n<answer>{answer}</answer>")
        sols.append(gts)
    return comps, sols


def _per_completion(comps, sols, parse, score_one):
    """The straightforward loop: parse each answer, score it alone; unparseable scores 0."""
    out = []
    for c, s in zip(comps, sols):
        answer = split_tags(c).answer
        parsed = parse(answer) if answer is not None else None
        out.append(0.0 if parsed is None else score_one(parsed, json.loads(s)))
    return np.array(out)


def _iou_one(box, sol):
    gx1, gy1, gx2, gy2 = sol[0]["bbox"]
    px1, py1, px2, py2 = box
    iw, ih = max(0.0, min(px2, gx2) - max(px1, gx1)), max(0.0, min(py2, gy2) - max(py1, gy1))
    inter = iw * ih
    union = max(0.0, px2 - px1) * max(0.0, py2 - py1) + (gx2 - gx1) * (gy2 - gy1) - inter
    return inter / union if union > 0 else 0.0


def _od_length_one(ovd, sol):
    """VLM-R1's way: a pycocotools COCO + COCOeval for this one completion."""
    n_gt, n_pred = len(sol), ovd.n_pred
    if n_gt == 0 or n_pred == 0:
        return 1.0 if n_gt == n_pred else 0.0
    m_ap, _ = coco_ap_reference(
        [normalize_label(g["label"]) for g in sol],
        [g["bbox"] for g in sol],
        [d.label for d in ovd.detections],
        [d.bbox for d in ovd.detections],
    )
    return min(1.0, n_gt / n_pred) * m_ap


def baseline_rec_iou(comps, sols):
    return _per_completion(comps, sols, parse_rec_box, _iou_one)


def baseline_od_length(comps, sols):
    return _per_completion(comps, sols, parse_ovd, _od_length_one)


def _time(fn, *args, repeat=1):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    frame = BoxFrame("abs_original")
    table = Table(title=f"Rewards on {args.n:,} REC + {args.n:,} OVD completions (one process, same inputs)")
    for col in ("reward", "ours (batched)", "per-completion baseline", "speed-up", "max |diff|"):
        table.add_column(col, justify="right")

    rec_c, rec_s = make_rec(rng, args.n)
    ovd_c, ovd_s = make_ovd(rng, args.n)
    # Solutions travel as JSON strings (shard column / TRL dataset column); both sides parse them.
    rec_j, ovd_j = [json.dumps(s) for s in rec_s], [json.dumps(s) for s in ovd_s]
    rec_batch = lambda: RewardBatch.build(rec_c, rec_j, [W] * args.n, [H] * args.n, "rec", frame)  # noqa: E731
    ovd_batch = lambda: RewardBatch.build(ovd_c, ovd_j, [W] * args.n, [H] * args.n, "ovd", frame)  # noqa: E731
    for name, ours, base in (
        ("iou (REC)", lambda: score("iou", rec_batch()), lambda: baseline_rec_iou(rec_c, rec_j)),
        ("od_length (OVD)", lambda: score("od_length", ovd_batch()), lambda: baseline_od_length(ovd_c, ovd_j)),
    ):
        t_ours, v_ours = _time(ours, repeat=3)
        t_base, v_base = _time(base)
        diff = float(np.max(np.abs(v_ours - v_base)))
        table.add_row(
            name, f"{t_ours * 1e3:.0f} ms", f"{t_base * 1e3:.0f} ms", f"{t_base / t_ours:.1f}x", f"{diff:.1e}"
        )

    worst = 0.0
    cases = adversarial_completions(1_000_000)
    for task, sol in (("rec", rec_s[0]), ("ovd", ovd_s[0])):
        for case in cases:
            batch = RewardBatch.build([case], [sol], [W], [H], task, frame)
            for name in ("format", "iou" if task == "rec" else "od_length"):
                t, _ = _time(lambda name=name, batch=batch: score(name, batch), repeat=3)
                worst = max(worst, t)
    Console().print(table)
    Console().print(
        f"1 MB adversarial completions ({len(cases)} shapes x rec/ovd x format/accuracy): slowest {worst * 1e3:.1f} "
        "ms per completion"
    )


if __name__ == "__main__":
    main()
