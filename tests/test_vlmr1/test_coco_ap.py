"""OVD map/ap50 equal pycocotools' COCOeval on the same single-image inputs."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.checks import coco_ap_reference
from vlmr1.coco_ap import Case, coco_ap
from vlmr1.rewards import RewardBatch, score

GT_LABELS = ["cat", "dog", "car"]
PRED_LABELS = GT_LABELS + ["zebra"]  # a label absent from every ground truth

coord = st.one_of(st.integers(0, 40).map(float), st.floats(0, 40, allow_nan=False).map(lambda v: round(v, 3)))


@st.composite
def gt_box(draw):
    x, y = draw(coord), draw(coord)
    return [x, y, x + draw(st.integers(1, 20)), y + draw(st.integers(1, 20))]


@st.composite
def pred_box(draw, gts):
    if gts and draw(st.integers(0, 3)) == 0:  # duplicate of a GT box (and so of each other)
        return list(draw(st.sampled_from(gts)))
    x, y = draw(coord), draw(coord)
    # zero and negative sizes too: COCOeval's handling of them is mirrored
    return [x, y, x + draw(st.integers(-3, 20)), y + draw(st.integers(-3, 20))]


@st.composite
def ovd_case(draw):
    gts = draw(st.lists(st.tuples(st.sampled_from(GT_LABELS), gt_box()), max_size=6))
    gt_boxes = [b for _, b in gts]
    preds = draw(st.lists(st.tuples(st.sampled_from(PRED_LABELS), pred_box(gt_boxes)), max_size=8))
    return gts, preds


def _completion(preds) -> str:
    body = json.dumps([{"bbox_2d": b, "label": label} for label, b in preds])
    return f"<think>looking</think><answer>```json\n{body}\n```</answer>"


@settings(max_examples=1200)
@given(ovd_case())
def test_map_and_ap50_equal_cocoeval(case):
    gts, preds = case
    ref_map, ref_ap50 = coco_ap_reference(
        [lbl for lbl, _ in gts], [b for _, b in gts], [lbl for lbl, _ in preds], [b for _, b in preds]
    )
    solution = [{"label": label, "bbox": b} for label, b in gts]  # valid by construction of gt_box
    batch = RewardBatch.build([_completion(preds)], [solution], [100], [100], "ovd")
    got_map, got_ap50 = score("map", batch)[0], score("ap50", batch)[0]
    if not gts:  # COCOeval has nothing to average (-1): VLM-R1's None rules decide instead
        assert np.isnan(ref_map)
        assert got_map == got_ap50 == (1.0 if not preds else 0.0)
        return
    assert got_map == pytest.approx(ref_map, abs=1e-6)
    assert got_ap50 == pytest.approx(ref_ap50, abs=1e-6)


@settings(max_examples=12)
@given(st.lists(ovd_case(), min_size=30, max_size=60))
def test_batched_kernel_equals_cocoeval_per_case(cases):
    """Many cases of mixed sizes in one call: chunking and padding change nothing."""
    batch = [
        Case(
            [lbl for lbl, _ in g],
            np.array([b for _, b in g]).reshape(-1, 4),
            [lbl for lbl, _ in p],
            np.array([b for _, b in p]).reshape(-1, 4),
        )
        for g, p in cases
    ]
    m_ap, ap50 = coco_ap(batch)
    for c, m, a in zip(batch, m_ap, ap50):
        rm, ra = coco_ap_reference(c.gt_labels, c.gt_boxes, c.pred_labels, c.pred_boxes)
        np.testing.assert_allclose([m, a], [rm, ra], atol=1e-6, equal_nan=True)


def test_more_than_100_detections_per_category_are_cut_like_cocoeval():
    rng = np.random.default_rng(3)
    gt = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], dtype=float)
    noise = np.c_[rng.uniform(0, 90, (130, 2)), rng.uniform(0, 90, (130, 2)) + 1]
    preds = np.concatenate([noise[:105], gt[1:], noise[105:], gt[:1]])  # true positives after the 100th
    preds[:, 2:] = preds[:, :2] + np.abs(preds[:, 2:] - preds[:, :2]) + 1
    preds[105], preds[-1] = gt[1], gt[0]
    labels = ["a"] * len(preds)
    ours = coco_ap([Case(["a", "a"], gt, labels, preds)])
    ref = coco_ap_reference(["a", "a"], gt, labels, preds)
    np.testing.assert_allclose([ours[0][0], ours[1][0]], ref, atol=1e-6)


def test_exact_threshold_ties_match():
    """IoU exactly 0.5 and identical GT boxes: tie-breaking follows COCOeval."""
    gt = np.array([[0, 0, 2, 1], [0, 0, 2, 1], [0, 0, 1, 1]], dtype=float)
    preds = np.array([[0, 0, 1, 1], [0, 0, 2, 1], [0, 0, 2, 1], [0, 0, 4, 1]], dtype=float)
    labels = ["a"] * 4
    ours = coco_ap([Case(["a"] * 3, gt, labels, preds)])
    ref = coco_ap_reference(["a"] * 3, gt, labels, preds)
    np.testing.assert_allclose([ours[0][0], ours[1][0]], ref, atol=1e-12)


def test_od_length_penalises_extra_predictions():
    solution = [{"label": "cat", "bbox": [0, 0, 10, 10]}, {"label": "dog", "bbox": [20, 20, 30, 30]}]
    exact = [("cat", [0, 0, 10, 10]), ("dog", [20, 20, 30, 30])]
    padded = exact + [("zebra", [40, 40, 50, 50])] * 2  # absent labels: free under mAP, not under od_length
    batch = RewardBatch.build([_completion(exact), _completion(padded)], [solution] * 2, [100] * 2, [100] * 2, "ovd")
    # COCOeval's np.spacing(1) in the precision denominator keeps a perfect AP at 1 - 2e-16
    np.testing.assert_allclose(score("map", batch), [1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(score("od_length", batch), [1.0, 0.5], atol=1e-12)


@pytest.mark.parametrize(
    "answer, solution, expected",
    [
        ("None", [], 1.0),  # both empty
        ("[]", [], 1.0),
        ('```json\n[{"bbox_2d": [0, 0, 5, 5], "label": "cat"}]\n```', [], 0.0),  # predicted something, nothing there
        ("None", [{"label": "cat", "bbox": [0, 0, 5, 5]}], 0.0),  # missed everything
        ("the cat is here", [], 0.0),  # unparseable is never "None"
    ],
)
def test_od_length_none_rules(answer, solution, expected):
    batch = RewardBatch.build([f"<think>t</think><answer>{answer}</answer>"], [solution], [100], [100], "ovd")
    assert score("od_length", batch)[0] == expected
