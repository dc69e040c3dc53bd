"""The reward dialect runs from scoring to shards, training and exports: one label, one semantics."""

import json

import numpy as np
import pytest

from curation.difficulty.config import ScorerConfig
from curation.difficulty.scoring import ScorerSpec, score_recipe
from curation.exports import dialect_warning
from curation.quality.recipe import load_recipe
from curation.selection.select import select
from curation.shards.write import write_shards
from helpers import coco_and_refcoco_catalog
from helpers import rows as _rows
from kit.completions import rec_batch, rec_cases
from training.config import TrainConfig
from training.grpo import ManifestMismatch, check_manifest
from vlmr1 import dialect_vlmr1
from vlmr1.families import get_family
from vlmr1.rewards import score, trl_reward
from vlmr1.rollout.base import Completion, EngineStats, Sampling

ANSWERS = [
    '<think>t</think><answer>{"bbox_2d": [40, 40, 200, 160]}</answer>',  # integers in braces: read by both
    "<think>t</think><answer>[40.5, 40, 200, 160]</answer>",  # floats: ours reads them, VLM-R1 does not
]


class FixedAnswers:
    """An engine whose k completions are ``ANSWERS`` in turn, whatever the prompt."""

    def __init__(self):
        self.family, self.stats = get_family("qwen2_5_vl"), EngineStats()

    def describe(self) -> dict:
        return {"engine": "fixed", "answers": ANSWERS}

    def generate(self, requests, sampling):
        return [[Completion(ANSWERS[j % len(ANSWERS)], 9) for j in range(sampling.n)] for _ in requests]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return coco_and_refcoco_catalog(tmp_path_factory.mktemp("dialect"), 4, 4, recipes=("none",))


def test_the_default_dialect_keeps_earlier_scorer_keys():
    spec = ScorerSpec({"path": "m"}, {"family": "f"})
    assert "dialect" not in spec.canonical()
    assert ScorerSpec({"path": "m"}, {"family": "f"}, ScorerConfig(dialect="vlmr1")).key != spec.key


def test_scoring_in_the_vlmr1_dialect_labels_with_vlmr1_rewards(db, tmp_path):
    engine, sampling = FixedAnswers(), Sampling(n=2, max_new_tokens=8)
    ours = score_recipe(db, load_recipe("none"), engine, ScorerConfig(sampling=sampling))
    theirs = score_recipe(db, load_recipe("none"), engine, ScorerConfig(sampling=sampling, dialect="vlmr1"))
    assert ours.scorer_key != theirs.scorer_key and theirs.scored_now == ours.scored_now > 0
    sql = (
        "SELECT s.task, s.solution, s.width, s.height, r.k_index, r.reward FROM rollouts r JOIN samples s "
        "USING (sample_id) WHERE r.scorer_key = ? AND s.task = 'rec'"
    )
    rows = _rows(db, sql, theirs.scorer_key)
    assert rows
    frame = get_family("qwen2_5_vl").frame()
    for _, solution, w, h, k, reward in rows:
        truth = json.loads(solution)[0]["bbox"]
        assert reward == pytest.approx(dialect_vlmr1.rec_iou(ANSWERS[k], truth, frame.input_size(w, h), (w, h)))
    assert all(reward == 0.0 for *_, k, reward in rows if k == 1)  # floats are not read in VLM-R1's REC reward
    manifest = json.loads(
        write_shards(select(db, load_recipe("none"), theirs.scorer_key), db, tmp_path / "s").read_text()
    )
    assert manifest["dialect"] == "vlmr1"
    assert dialect_warning(manifest, "vlmr1", "VLM-R1") is None
    assert "'vlmr1' reward dialect" in dialect_warning(manifest, "vlmr1-curate", "our EasyR1 reward function")
    with pytest.raises(ManifestMismatch, match="'vlmr1' reward dialect"):
        check_manifest(manifest, TrainConfig(model="m", family="qwen2_5_vl", dialect="vlmr1-curate"))


def test_batch_scoring_in_the_dialect_equals_its_row_rules():
    cases = rec_cases(300, seed=3)
    batch = rec_batch(cases, get_family("qwen2_5_vl").frame())
    want = np.array([dialect_vlmr1.rec_iou(*c.args()) for c in cases])
    assert np.array_equal(score("iou", batch, "vlmr1"), want)
    assert not np.allclose(score("iou", batch), want)  # the dialects do differ on these completions
    reward = trl_reward("iou", get_family("qwen2_5_vl").frame(), "vlmr1")
    got = reward(
        [c.completion for c in cases[:20]],
        solution=[json.dumps([{"label": "x", "bbox": c.truth}]) for c in cases[:20]],
        width=[c.image_wh[0] for c in cases[:20]],
        height=[c.image_wh[1] for c in cases[:20]],
        resized_width=[c.input_wh[0] for c in cases[:20]],
        resized_height=[c.input_wh[1] for c in cases[:20]],
    )
    assert got == pytest.approx(list(want[:20]))
    with pytest.raises(ValueError, match="unknown reward dialect 'r1v'"):
        score("iou", batch, "r1v")
