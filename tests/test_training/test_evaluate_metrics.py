"""Evaluation metrics come from the training rewards' own code: equal to the rewards row by row, and to COCOeval."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from kit.checks import coco_map_reference
from training.evaluate import evaluate_model, split_metrics
from vlmr1.families import get_family
from vlmr1.rewards import RewardBatch, dataset_map, score
from vlmr1.rollout.base import Completion, EngineStats

FRAME = get_family("qwen2_5_vl").frame()
LABELS = ["dog", "cat", "red car", "person"]


def _answer(task, boxes, labels, rng):
    """A completion in the model's frame: well formed, or one of the shapes models produce when they go wrong."""
    shape = int(rng.integers(0, 10))
    if task == "rec":
        box = [round(float(v), 1) for v in boxes[0]] if len(boxes) else [1, 2, 3, 4]
        return ["<think>t</think><answer>{}</answer>".format(json.dumps(box)), "<answer>no box</answer>"][shape == 0]
    dets = [{"bbox_2d": [round(float(v), 1) for v in b], "label": lbl} for b, lbl in zip(boxes, labels)]
    if shape == 0:
        return "<think>t</think><answer>None</answer>"
    if shape == 1:
        return "<think>t</think><answer>not json at all</answer>"
    if shape == 2:  # far outside the image, and a degenerate box
        dets += [
            {"bbox_2d": [1e7, 1e7, 2e7, 2e7], "label": labels[0] if labels else "dog"},
            {"bbox_2d": [5, 5, 5, 9], "label": "cat"},
        ]
    if shape == 3:  # more than COCOeval's 100 detections of one category in one image
        dets += [{"bbox_2d": [i, i, i + 20, i + 20], "label": "dog"} for i in range(120)]
    return "<think>t</think><answer>```json\n" + json.dumps(dets) + "\n```</answer>"


def _rows(rng, n_images):
    rows, completions = [], []
    for i in range(n_images):
        w, h = int(rng.integers(200, 900)), int(rng.integers(200, 900))
        task = "ovd" if i % 3 else "rec"
        n = 1 if task == "rec" else int(rng.integers(0, 4))
        gt = []
        for _ in range(n):
            x1, y1 = rng.uniform(0, w - 40), rng.uniform(0, h - 40)
            gt.append(
                {
                    "label": LABELS[int(rng.integers(0, 4))],
                    "bbox": [x1, y1, x1 + rng.uniform(10, 40), y1 + rng.uniform(10, 40)],
                }
            )
        boxes = FRAME.from_original([t["bbox"] for t in gt] or np.zeros((0, 4)), w, h)
        boxes = boxes + rng.normal(0, 4, size=boxes.shape)  # answers near the truth, some passing, some not
        labels = [t["label"] if rng.random() > 0.2 else "zebra" for t in gt]
        rows.append({"task": task, "solution": json.dumps(gt), "width": w, "height": h, "split": f"s{i % 2}"})
        completions.append(_answer(task, boxes, labels, rng))
    return rows, completions


def _reference(rows, completions, idx):
    """Parse with the reward path, then score with pycocotools' dataset-level COCOeval."""
    from vlmr1.answers import parse_ovd, split_tags

    gts, dts = [], []
    for i in idx:
        gts.append([(t["label"], tuple(t["bbox"])) for t in json.loads(rows[i]["solution"])])
        ans = split_tags(completions[i]).answer
        ovd = parse_ovd(ans) if ans is not None else None
        dets = ovd.detections if ovd is not None else ()
        per_label: dict[str, int] = {}
        kept = []
        for d in dets:  # COCOeval keeps the first 100 per image and category
            per_label[d.label] = per_label.get(d.label, 0) + 1
            if per_label[d.label] <= 100:
                kept.append(d)
        boxes = FRAME.to_original([d.bbox for d in kept], rows[i]["width"], rows[i]["height"]) if kept else []
        dts.append([(d.label, tuple(b)) for d, b in zip(kept, boxes)])
    return coco_map_reference(gts, dts)


def _batch(rows, completions):
    columns = ([r[k] for r in rows] for k in ("solution", "width", "height", "task"))
    return RewardBatch.build(completions, *columns, FRAME, None)


@pytest.mark.parametrize("seed", range(8))
def test_dataset_map_equals_cocoeval(seed):
    rng = np.random.default_rng(seed)
    rows, completions = _rows(rng, 24)
    batch = _batch(rows, completions)
    ovd = [i for i, r in enumerate(rows) if r["task"] == "ovd"]
    ours = dataset_map(batch, ovd)
    ref = _reference(rows, completions, ovd)
    if ref[0] is None:
        assert ours == (None, None)
    else:
        assert ours[0] == pytest.approx(ref[0], abs=1e-12)
        assert ours[1] == pytest.approx(ref[1], abs=1e-12)


def test_evaluation_equals_the_rewards_row_by_row():
    rng = np.random.default_rng(42)
    rows, completions = _rows(rng, 30)
    for r in rows:
        r["split"] = "all"
    batch = _batch(rows, completions)
    metrics = split_metrics(rows, completions, FRAME)
    rec = [i for i, r in enumerate(rows) if r["task"] == "rec"]
    assert metrics["all/rec"]["mean_iou"] == pytest.approx(float(np.mean(score("iou", batch)[rec])), abs=0)
    assert metrics["all/rec"]["acc@0.5"] == pytest.approx(float(np.mean(score("hit@0.5", batch)[rec])), abs=0)
    per_image = score("map", batch)
    for i, r in enumerate(rows):  # a split of one image: dataset-level AP is that image's map reward
        if r["task"] == "ovd" and json.loads(r["solution"]):
            one = split_metrics([r], [completions[i]], FRAME)["all/ovd"]
            assert one["mAP"] == pytest.approx(per_image[i], abs=1e-12)


class Scripted:
    """Answers each request with a fixed completion, in request order."""

    def __init__(self, answers):
        self.family, self.stats, self.answers = get_family("qwen2_5_vl"), EngineStats(), list(answers)

    def generate(self, requests, sampling):
        return [[Completion(self.answers.pop(0), 5)] for _ in requests]


def test_ovd_evaluation_with_detections_does_not_crash_and_equals_cocoeval():
    rng = np.random.default_rng(7)
    rows, completions = _rows(rng, 18)
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(buf, "PNG")
    for r in rows:
        r.update(problem="dog", image=None, image_bytes=buf.getvalue())
    results = evaluate_model(Scripted(completions), rows, batch=4)
    for split in ("s0", "s1"):
        idx = [i for i, r in enumerate(rows) if r["split"] == split and r["task"] == "ovd"]
        ref = _reference(rows, completions, idx)
        assert results["metrics"][f"{split}/ovd"]["mAP"] == pytest.approx(ref[0], abs=1e-12)
        assert results["metrics"][f"{split}/ovd"]["AP50"] == pytest.approx(ref[1], abs=1e-12)
