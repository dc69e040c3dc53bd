"""Box geometry and frames: IoU, conversions, smart resize, exact round trips."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlmr1.boxes import (
    BoxFrame,
    clip_boxes,
    iou_matrix,
    iou_pairwise,
    smart_resize,
    xywh_to_xyxy,
    xyxy_to_xywh,
)
from vlmr1.rewards import RewardBatch, score


def test_iou_known_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 20, 10]])
    np.testing.assert_allclose(iou_pairwise(a, b), [1.0, 50 / 150, 0.0, 0.5])


def test_iou_degenerate_and_inverted_boxes_score_zero():
    a = np.array([[0, 0, 0, 0], [10, 10, 0, 0], [0, 0, 10, 10]])
    b = np.array([[0, 0, 0, 0], [0, 0, 10, 10], [5, 5, 5, 9]])
    assert iou_pairwise(a, b).tolist() == [0.0, 0.0, 0.0]


@given(st.integers(1, 6), st.integers(0, 6), st.randoms(use_true_random=False))
def test_iou_matrix_agrees_with_pairwise(n, m, rnd):
    rng = np.random.default_rng(rnd.randint(0, 2**32 - 1))
    a = xywh_to_xyxy(np.c_[rng.uniform(0, 50, (n, 2)), rng.uniform(0.5, 30, (n, 2))])
    b = xywh_to_xyxy(np.c_[rng.uniform(0, 50, (m, 2)), rng.uniform(0.5, 30, (m, 2))])
    mat = iou_matrix(a, b)
    assert mat.shape == (n, m)
    for j in range(m):
        np.testing.assert_allclose(mat[:, j], iou_pairwise(a, np.repeat(b[j : j + 1], n, 0)))
    assert ((mat >= 0) & (mat <= 1)).all()


def test_xywh_round_trip_and_clip():
    xywh = np.array([[10.5, 20, 30, 40], [0, 0, 1, 1]])
    np.testing.assert_allclose(xyxy_to_xywh(xywh_to_xyxy(xywh)), xywh)
    assert xywh_to_xyxy(xywh)[0].tolist() == [10.5, 20, 40.5, 60]
    assert clip_boxes([[-5, -5, 700, 300]], 640, 480).tolist() == [[0, 0, 640, 300]]


@settings(max_examples=500)
@given(
    st.integers(1, 8000),
    st.integers(1, 8000),
    st.sampled_from([28, 32]),
    st.integers(1, 4096),
    st.integers(1, 16384),
)
def test_smart_resize_equals_transformers(h, w, factor, min_tokens, max_tokens):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as reference

    min_px, max_px = min(min_tokens, max_tokens) * factor * factor, max(min_tokens, max_tokens) * factor * factor
    if max(h, w) / min(h, w) > 200:
        with pytest.raises(ValueError):
            smart_resize(h, w, factor, min_px, max_px)
        return
    assert smart_resize(h, w, factor, min_px, max_px) == reference(h, w, factor, min_px, max_px)


@settings(max_examples=1000)
@given(
    st.integers(16, 6000),
    st.integers(16, 6000),
    st.sampled_from(["abs_original", "abs_resized", "norm1000"]),
    st.integers(4, 64),
    st.integers(256, 16384),
    st.lists(st.floats(-100, 7000, allow_nan=False), min_size=4, max_size=4),
)
def test_frame_round_trip_is_exact(w, h, kind, min_tokens, max_tokens, coords):
    if max(h, w) / min(h, w) > 200:
        return
    frame = BoxFrame(kind, min_pixels=min_tokens * 28 * 28, max_pixels=max_tokens * 28 * 28)
    box = np.array([coords])
    there = frame.from_original(box, w, h)
    back = frame.to_original(there, w, h)
    np.testing.assert_allclose(back, box, atol=1e-6, rtol=0)


def test_resized_extent_is_a_multiple_of_factor_within_pixel_budget():
    frame = BoxFrame("abs_resized", min_pixels=256 * 28 * 28, max_pixels=1280 * 28 * 28)
    fw, fh = frame.extent(4032, 3024)
    assert fw % 28 == 0 and fh % 28 == 0 and fw * fh <= 1280 * 28 * 28
    assert frame.extent(640, 480, resized=(644, 476)) == (644.0, 476.0)
    assert BoxFrame("norm1000").extent(640, 480) == (1000.0, 1000.0)


def test_unknown_frame_is_refused():
    with pytest.raises(ValueError, match="unknown box frame"):
        BoxFrame("relative")


@settings(max_examples=300)
@given(
    st.integers(64, 4000),
    st.integers(64, 4000),
    st.floats(0.0, 0.6),
    st.floats(0.0, 0.6),
    st.floats(0.05, 0.4),
    st.floats(0.05, 0.4),
    st.floats(-30, 30),
)
def test_rec_reward_is_frame_invariant(w, h, fx, fy, fw, fh, shift):
    """An answer in Qwen2.5-VL's resized pixels scores what the same box in original pixels scores."""
    gt = (fx * w, fy * h, (fx + fw) * w, (fy + fh) * h)
    pred = np.array([[gt[0] + shift, gt[1] - shift / 2, gt[2] + shift, gt[3] + shift / 3]])
    solution = [{"label": "thing", "bbox": list(gt)}]
    rewards = {}
    for kind in ("abs_original", "abs_resized", "norm1000"):
        frame = BoxFrame(kind, max_pixels=1280 * 28 * 28)
        answer = frame.from_original(pred, w, h)[0].tolist()
        completion = f'<think>t</think><answer>{{"bbox_2d": {answer}}}</answer>'
        batch = RewardBatch.build([completion], [solution], [w], [h], "rec", frame)
        rewards[kind] = score("iou", batch)[0]
    assert rewards["abs_resized"] == pytest.approx(rewards["abs_original"], abs=1e-9)
    assert rewards["norm1000"] == pytest.approx(rewards["abs_original"], abs=1e-9)
    assert rewards["abs_original"] == pytest.approx(iou_pairwise(pred, [gt])[0], abs=1e-12)


def test_explicit_resized_size_overrides_smart_resize():
    """When the processor's actual output size is known, it is the frame."""
    solution = [{"label": "x", "bbox": [100, 100, 200, 200]}]
    completion = '<think>t</think><answer>{"bbox_2d": [50, 50, 100, 100]}</answer>'
    frame = BoxFrame("abs_resized")
    batch = RewardBatch.build([completion], [solution], [640], [480], "rec", frame, resized=[(320, 240)])
    assert score("iou", batch)[0] == pytest.approx(1.0)
