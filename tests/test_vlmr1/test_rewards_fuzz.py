"""Rewards never raise and always return a float in [0, 1], on any string."""

import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.checks import adversarial_completions
from vlmr1.boxes import BoxFrame
from vlmr1.rewards import REGISTRY, RewardBatch, score

REC_SOL = [{"label": "the man", "bbox": [10.0, 20.0, 200.0, 300.0]}]
OVD_SOL = [{"label": "cat", "bbox": [0.0, 0.0, 50.0, 60.0]}, {"label": "dog", "bbox": [100.0, 100.0, 300.0, 250.0]}]
FRAMES = [BoxFrame("abs_original"), BoxFrame("abs_resized", max_pixels=1280 * 28 * 28), BoxFrame("norm1000")]

numbers = st.one_of(
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e308, -1e308, 1e-320]),
)
json_leaf = st.one_of(numbers, st.text(max_size=8), st.booleans(), st.none())
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.sampled_from(["bbox_2d", "label", "bbox", "x"]), inner, max_size=3),
    ),
    max_leaves=20,
)
fragments = st.one_of(
    st.sampled_from(
        ["<think>", "</think>", "<answer>", "</answer>", "```json", "```", "None", "[", "]", "{", "}", ",", " "]
    ),
    st.text(max_size=20),
    numbers.map(str),
    json_value.map(lambda v: json.dumps(v, allow_nan=True)),
)
completions = st.one_of(
    st.text(max_size=200),
    st.lists(fragments, max_size=12).map("".join),
    json_value.map(lambda v: f"<think>x</think><answer>{json.dumps(v, allow_nan=True)}</answer>"),
    json_value.map(lambda v: f"<think>x</think><answer>```json\n{json.dumps(v, allow_nan=True)}\n```</answer>"),
)


@settings(max_examples=4_000)
@given(completions, st.sampled_from(FRAMES), st.sampled_from(["rec", "ovd"]))
def test_every_reward_is_a_float_in_unit_interval(text, frame, task):
    solution = REC_SOL if task == "rec" else OVD_SOL
    batch = RewardBatch.build([text], [solution], [640], [480], task, frame)
    for name, spec in REGISTRY.items():
        if spec.task not in (None, task):
            continue
        value = score(name, batch)[0]
        assert isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0, (name, text, value)


def test_one_megabyte_adversarial_completions_are_scored():
    """Bounded work: every reward finishes on 1 MB inputs (timing is in benchmarks/rewards.py)."""
    cases = adversarial_completions(1_000_000)
    for task, sol in (("rec", REC_SOL), ("ovd", OVD_SOL)):
        batch = RewardBatch.build(cases, [sol] * len(cases), [640] * len(cases), [480] * len(cases), task)
        for name, spec in REGISTRY.items():
            if spec.task in (None, task):
                values = score(name, batch)
                assert np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all()
