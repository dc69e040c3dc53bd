"""Rewards as TRL reward functions, called the way GRPOTrainer calls them."""

import json

import pytest

from vlmr1.boxes import BoxFrame
from vlmr1.rewards import trl_reward


def _columns():
    rec_sol = json.dumps([{"label": "man", "bbox": [0, 0, 100, 100]}])
    ovd_sol = json.dumps([{"label": "cat", "bbox": [0, 0, 50, 50]}])
    return {
        "solution": [rec_sol, ovd_sol],
        "width": [200, 200],
        "height": [200, 200],
        "task": ["rec", "ovd"],
        "trainer_state": object(),
        "log_extra": lambda *a: None,
        "log_metric": lambda *a: None,
    }


def test_conversational_completions_and_mixed_tasks():
    completions = [
        [{"role": "assistant", "content": "<think>t</think><answer>[0, 0, 100, 50]</answer>"}],
        [
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "text",
                        "text": '<think>t</think><answer>[{"bbox_2d": [0, 0, 50, 50], "label": "cat"}]</answer>',
                    }
                ],
            }
        ],
    ]
    kwargs = dict(prompts=[[], []], completions=completions, completion_ids=[[1], [2]], **_columns())
    assert trl_reward("iou")(**kwargs) == [0.5, None]  # None: not an OVD reward's row, TRL skips it
    assert trl_reward("od_length")(**kwargs)[0] is None
    assert trl_reward("od_length")(**kwargs)[1] == pytest.approx(1.0)
    assert trl_reward("format")(**kwargs) == [1.0, 1.0]
    assert trl_reward("hit@0.5").__name__ == "hit_at_05"


def test_frame_is_applied_with_resized_columns():
    cols = _columns()
    cols.update(resized_width=[400, 400], resized_height=[400, 400])
    completions = ["<think>t</think><answer>[0, 0, 200, 200]</answer>", "None"]
    rewards = trl_reward("iou", BoxFrame("abs_resized"))(prompts=["", ""], completions=completions, **cols)
    assert rewards == [1.0, None]
