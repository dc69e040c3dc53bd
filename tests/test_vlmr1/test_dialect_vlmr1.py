"""The ``vlmr1`` dialect, rule by rule, as tables of cases with the values VLM-R1's released code gives.

Expected values follow VLM-R1's documented parsing (first <answer> and first ``[d, d, d, d]`` for REC, last
block and last fence for OVD, inclusive-pixel IoU, ``> 0.5`` in evaluation); the full comparison against
VLM-R1's own functions on 5000 generated completions is ``benchmarks/dialect_agreement.py``.
"""

import pytest

from vlmr1 import dialect_vlmr1 as d

T = "<think>t</think>"
TRUTH = [10.0, 10.0, 110.0, 60.0]  # original pixels, 100 x 50
SAME = ((200, 100), (200, 100))  # model input frame == original
HALF = ((100, 50), (200, 100))  # the model saw the image at half size


@pytest.mark.parametrize(
    "completion, frames, expected",
    [
        (f'{T}<answer>{{"bbox_2d": [10, 10, 110, 60]}}</answer>', SAME, 1.0),
        (f"{T}<answer>[10, 10, 110, 60]</answer>", SAME, 1.0),  # no braces: still read for training
        (f'{T}<answer>{{"bbox_2d": [5, 5, 55, 30]}}</answer>', HALF, 1.0),  # rescaled from the input frame
        (f"{T}<answer>[10.0, 10, 110, 60]</answer>", SAME, 0.0),  # floats are not read
        (f"{T}<answer>[ 10, 10, 110, 60]</answer>", SAME, 0.0),  # no space allowed after '['
        (f"{T}<answer>[-10, 10, 110, 60]</answer>", SAME, 0.0),  # negatives are not read
        (f"{T}[10, 10, 110, 60]", SAME, 0.0),  # no answer block
        (f"{T}<answer>[0, 0, 5, 5]</answer><answer>[10, 10, 110, 60]</answer>", SAME, 0.0),  # first block counts
        (f"{T}<answer>[10, 10, 110, 60] [0, 0, 1, 1]</answer>", SAME, 1.0),  # first box counts
        (f"{T}<answer>[10, 10, 60, 60]</answer>", SAME, 0.5),  # half the box, inclusive ends cancel
        (f"{T}<answer>[109, 10, 200, 60]</answer>", SAME, 0.0),  # one pixel of overlap counts as none
        (f"{T}<answer>[10, 10, 10, 60]</answer>", SAME, 0.0),  # zero-width box against the truth
        ("<answer>None</answer>", SAME, 0.0),
    ],
)
def test_rec_iou(completion, frames, expected):
    input_wh, image_wh = frames
    assert d.rec_iou(completion, TRUTH, input_wh, image_wh) == pytest.approx(expected, abs=1e-12)


def test_rec_iou_counts_pixels_inclusively():
    # boxes [0,0,10,10] and [5,0,15,10]: intersection (9-5+1)*(9-0+1) = 50, union 100 + 100 - 50
    assert d.pixel_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert d.pixel_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0  # a zero union is 0, not an error


@pytest.mark.parametrize(
    "completion, expected",
    [
        (f'{T}<answer>{{"bbox_2d": [10, 10, 110, 60]}}</answer>', 1.0),
        (f"{T}<answer>[10, 10, 110, 60]</answer>", 0.0),  # evaluation needs the braces: [0,0,0,0] otherwise
        (f'{T}<answer>{{"bbox_2d": [10, 10, 60, 60]}}</answer>', 0.0),  # IoU exactly 0.5 is not > 0.5
        (f'{T}<answer>{{"bbox_2d": [10, 10, 62, 60]}}</answer>', 1.0),
    ],
)
def test_rec_evaluation_hit(completion, expected):
    assert d.rec_hit(completion, TRUTH, *SAME) == expected


@pytest.mark.parametrize(
    "completion, rec, ovd",
    [
        (f'{T}<answer>{{"bbox_2d": [1, 2, 3, 4]}}</answer>', 1.0, 1.0),
        (f"{T}<answer>[1, 2, 3, 4]</answer>", 0.0, 1.0),  # REC format needs {...} around the box
        (f'{T}\n<answer>{{"bbox_2d": [1, 2, 3, 4]}}</answer> bye', 1.0, 0.0),  # OVD format is a full match
        ('<answer>{"bbox_2d": [1, 2, 3, 4]}</answer>', 0.0, 0.0),
        (f"{T}<answer>None</answer>", 0.0, 1.0),
    ],
)
def test_format_rewards(completion, rec, ovd):
    assert (d.rec_format(completion), d.format_reward(completion)) == (rec, ovd)


GT = '```json\n[{"bbox_2d": [0, 0, 100, 100], "label": "dog"}, {"bbox_2d": [200, 200, 300, 300], "label": "cat"}]\n```'
EXACT = (
    '```json\n[{"bbox_2d": [0, 0, 100, 100], "label": "dog"}, {"bbox_2d": [200, 200, 300, 300], "label": "cat"}]\n```'
)


@pytest.mark.parametrize(
    "completion, truth, ap, ap50, length",
    [
        (f"{T}<answer>{EXACT}</answer>", GT, 1.0, 1.0, 1.0),
        (f"{T}<answer>None</answer>", "None", 1.0, 1.0, 1.0),
        (f"{T}<answer>nothing here</answer>", "None", 1.0, 1.0, 1.0),  # no fence on either side
        (f"{T}<answer>{EXACT}</answer>", "None", 0.0, 0.0, 0.0),
        (f"{T}<answer>None</answer>", GT, 0.0, 0.0, 0.0),
        (f"{T}{EXACT}", GT, 0.0, 0.0, 0.0),  # no answer block
        (f"{T}<answer>{EXACT[8:-4]}</answer>", GT, 0.0, 0.0, 0.0),  # unfenced JSON is not read
        (f"{T}<answer>{EXACT}\n```json\n[]\n```</answer>", GT, 0.0, 0.0, 0.0),  # the last fence counts
        (f"{T}<answer>```json\n[]\n```</answer><answer>{EXACT}</answer>", GT, 1.0, 1.0, 1.0),  # last block
        # one of two found: per-category AP averages dog 1.0 and cat 0.0
        (f'{T}<answer>```json\n[{{"bbox_2d": [0, 0, 100, 100], "label": "dog"}}]\n```</answer>', GT, 0.5, 0.5, 0.5),
        # an unknown label is skipped for AP but counts for the length penalty (2 truths / 3 predictions)
        (
            f'{T}<answer>```json\n{EXACT[8:-5]}, {{"bbox_2d": [1, 1, 9, 9], "label": "cow"}}]\n```</answer>',
            GT,
            1.0,
            1.0,
            2 / 3,
        ),
        # 5 numbers: the first 4 are used; a "bbox" key is skipped
        (
            f'{T}<answer>```json\n[{{"bbox_2d": [0, 0, 100, 100, 9], "label": "dog"}}, '
            f'{{"bbox": [200, 200, 300, 300], "label": "cat"}}]\n```</answer>',
            GT,
            0.5,
            0.5,
            0.5,
        ),
    ],
)
def test_ovd_rewards(completion, truth, ap, ap50, length):
    assert d.od_reward(completion, truth) == pytest.approx(ap)
    assert d.od_reward(completion, truth, score_type=1) == pytest.approx(ap50)
    assert d.od_reward(completion, truth, length_penalty=True) == pytest.approx(length)


def test_each_dialect_reads_the_boxes_its_rewards_read():
    """Label quality compares the boxes a scorer's rewards saw: ours in original pixels through the family's frame;
    VLM-R1's first REC box of the first answer rescaled from its input size, the last fence of the last answer for
    OVD, unscaled; an answer that does not parse is None."""
    from vlmr1.boxes import BoxFrame
    from vlmr1.dialect_vlmr1 import rec_iou
    from vlmr1.rewards import DIALECTS, read_boxes

    frame, (w, h) = BoxFrame("abs_resized"), (640, 480)
    fw, fh = frame.extent(w, h)
    rec = "<think>x</think><answer>[10, 20, 110, 220]</answer><answer>[0, 0, 5, 5]</answer>"
    ours = read_boxes("vlmr1-curate", "rec", "<think>x</think><answer>[10, 20, 110, 220]</answer>", frame, w, h)
    assert ours[0].bbox == pytest.approx((10 * w / fw, 20 * h / fh, 110 * w / fw, 220 * h / fh))
    theirs = read_boxes("vlmr1", "rec", rec, frame, w, h)[0].bbox
    iw, ih = frame.input_size(w, h)
    assert theirs == pytest.approx((10 / iw * w, 20 / ih * h, 110 / iw * w, 220 / ih * h))
    assert rec_iou(rec, list(theirs), (iw, ih), (w, h)) > 0.97  # their reward finds that box
    ovd = ('<think>x</think><answer>```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "cat"}]\n```</answer>'
           '<answer>```json\n[{"bbox_2d": [5, 6, 7, 8], "label": " Dog "}, {"label": "x"}]\n```</answer>')  # fmt: skip
    assert [(d.label, d.bbox) for d in read_boxes("vlmr1", "ovd", ovd, frame, w, h)] == [("dog", (5, 6, 7, 8))]
    for dialect in DIALECTS:
        assert read_boxes(dialect, "rec", "<think>x</think><answer>left</answer>", frame, w, h) is None
