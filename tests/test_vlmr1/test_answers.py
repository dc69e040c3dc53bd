"""Completion parsing: tags, REC boxes, OVD lists, repair, bounds."""

import pytest

from vlmr1.answers import MAX_COMPLETION_CHARS, answer_text, parse_ovd, parse_rec_box, split_tags


@pytest.mark.parametrize(
    "text, well_formed",
    [
        ("<think>a</think><answer>b</answer>", True),
        ("  <think>a</think>\n\n<answer>b</answer>\n", True),
        ("<think>a</think> text <answer>b</answer>", False),  # text between blocks
        ("<answer>b</answer>", False),
        ("<think>a</think><answer>b</answer><answer>c</answer>", False),  # a second answer
        ("<think>a</think><answer>b", False),  # unclosed
        ("<think>a<think>x</think><answer>b</answer>", False),  # nested tag
        ("preamble <think>a</think><answer>b</answer>", False),
    ],
)
def test_format_is_strict(text, well_formed):
    assert split_tags(text).well_formed is well_formed


def test_first_complete_answer_block_is_read():
    t = split_tags("<think>x</think><answer>[1,2,3,4]</answer> <answer>[5,6,7,8]</answer>")
    assert t.answer == "[1,2,3,4]" and t.think == "x"
    assert answer_text("no tags [1,2,3,4]") is None
    assert answer_text("no tags [1,2,3,4]", require_tags=False) == "no tags [1,2,3,4]"


@pytest.mark.parametrize(
    "answer, box",
    [
        ('{"bbox_2d": [10, 20, 30, 40], "label": "man"}', (10, 20, 30, 40)),
        ('```json\n[{"bbox_2d": [10.5, 20, 30, 40], "label": "man"}]\n```', (10.5, 20, 30, 40)),
        ("[10, 20, 30, 40]", (10, 20, 30, 40)),
        ("The box is [ 10 ,20, 30,40 ] I think", (10, 20, 30, 40)),
        ('{"bbox_2d": [10, 20, 30, 40],}', (10, 20, 30, 40)),  # trailing comma: repaired
        ('{"bbox_2d": [10, 20, 30, 40]', (10, 20, 30, 40)),  # unclosed object: repaired
        ("[[1, 2, 3, 4], [5, 6, 7, 8]]", (1, 2, 3, 4)),
        ("[1e1, 2.5, -3, 4]", (10, 2.5, -3, 4)),
    ],
)
def test_rec_box_forms(answer, box):
    assert parse_rec_box(answer) == box


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "none",
        '{"bbox_2d": [1, 2, 3]}',
        '{"bbox_2d": [1, 2, 3, NaN]}',
        '{"bbox_2d": [true, 2, 3, 4]}',
        "[1e999, 0, 1, 1]",
        '{"bbox_2d": "1,2,3,4"}',
        "[١, ٢, ٣, ٤]",
    ],
)
def test_rec_box_refused(answer):
    assert parse_rec_box(answer) is None


def test_ovd_forms():
    fenced = '```json\n[{"bbox_2d": [1, 2, 3, 4], "label": " Cat "}, {"bbox_2d": [1, 2], "label": "dog"}, "junk"]\n```'
    ans = parse_ovd(fenced)
    assert [(d.label, d.bbox) for d in ans.detections] == [("cat", (1, 2, 3, 4))]
    assert ans.invalid == 2 and ans.n_pred == 3 and not ans.none
    assert parse_ovd("None").none and parse_ovd(" none. ").none and parse_ovd("```json\nNone\n```").none
    assert parse_ovd("[]").none
    assert parse_ovd("I see a cat") is None
    bare = parse_ovd('[{"bbox_2d": [1, 2, 3, 4], "label": "cat"}')  # unclosed list: repaired
    assert bare is not None and len(bare.detections) == 1


def test_inputs_are_cut_to_the_bound():
    huge = "<think>" + "a" * (2 * MAX_COMPLETION_CHARS) + "</think><answer>[1,2,3,4]</answer>"
    t = split_tags(huge)
    assert t.answer is None and not t.well_formed  # the answer lies beyond the cut
