"""The ablation's statistics on simulated studies whose truth is known: intervals cover, controls behave."""

import json

import numpy as np
import pytest

from curation.ablation.arms import Comparison
from curation.ablation.compare import ArmResult, compare
from curation.ablation.stats import Outcomes, arm_interval, difference_interval, verdict


def _study(rng, p: float, seeds: int = 3, n: int = 300, seed_sd: float = 0.04, items=None) -> np.ndarray:
    """Per-sample hits: each evaluation item has its own difficulty (shared by arms), each seed its own offset."""
    items = rng.normal(0, 1.0, n) if items is None else items
    logit = np.log(p / (1 - p)) + items[None, :] + rng.normal(0, seed_sd * 10, (seeds, 1))
    return (rng.random((seeds, n)) < 1 / (1 + np.exp(-logit))).astype(float)


def test_a_real_difference_is_detected_and_named():
    rng = np.random.default_rng(1)
    items = rng.normal(0, 1.0, 300)
    a, b = Outcomes.per_sample(_study(rng, 0.75, items=items)), Outcomes.per_sample(_study(rng, 0.35, items=items))
    diff = difference_interval(a, b, n_boot=1000)
    assert diff.low > 0.15 and diff.excludes_zero()
    assert verdict("clean", "noisy", diff) == "clean > noisy"
    assert verdict("noisy", "clean", difference_interval(b, a, n_boot=1000)) == "clean > noisy"


def test_same_arm_twice_is_called_different_about_5_percent_of_the_time():
    """100 negative-control studies (same truth, other seeds): the 95% interval of the difference must exclude 0
    in about 5% of them (seed noise kept in the interval), and each arm's interval must cover the truth."""
    rng = np.random.default_rng(7)
    false_alarms, covered = 0, 0
    for _ in range(100):
        items = rng.normal(0, 1.0, 200)
        a = Outcomes.per_sample(_study(rng, 0.5, n=200, items=items))
        b = Outcomes.per_sample(_study(rng, 0.5, n=200, items=items))
        false_alarms += difference_interval(a, b, n_boot=400, seed=int(rng.integers(1 << 30))).excludes_zero()
        truth = np.mean(1 / (1 + np.exp(-items)))  # the mean over these items, seed offsets averaged out
        ci = arm_interval(a, n_boot=400)
        covered += ci.low <= truth <= ci.high
    assert false_alarms <= 12, false_alarms
    assert covered >= 80, covered


def test_seed_noise_widens_the_interval():
    """With large seed-to-seed spread, an interval over samples alone would be too narrow; ours is wider."""
    rng = np.random.default_rng(3)
    calm, noisy = _study(rng, 0.5, seed_sd=0.0), _study(rng, 0.5, seed_sd=0.1)
    w = lambda v: (lambda ci: ci.high - ci.low)(arm_interval(Outcomes.per_sample(v), n_boot=800))  # noqa: E731
    assert w(noisy) > 1.5 * w(calm)


def test_difference_needs_the_same_samples():
    a, b = Outcomes.per_sample(np.ones((2, 10))), Outcomes.per_sample(np.ones((2, 11)))
    with pytest.raises(ValueError, match="different samples"):
        difference_interval(a, b)


def _results(rows, answers):
    return {
        "checkpoint": "x",
        "family": {
            "family": "qwen2_5_vl",
            "frame": "abs_original",
            "min_pixels": 3136,
            "max_pixels": 12845056,
            "factor": 28,
        },  # fmt: skip
        "samples": [
            {
                "sample_id": r["sample_id"],
                "split": r["split"],
                "task": r["task"],
                "completion": a,
                "iou": None if r["task"] == "ovd" else float(a.startswith("<answer>[10")),
                "hit": None if r["task"] == "ovd" else float(a.startswith("<answer>[10")),
            }
            for r, a in zip(rows, answers)
        ],  # fmt: skip
    }


def test_compare_keeps_tasks_apart_and_checks_controls():
    """REC rows get Acc@0.5 / mean IoU, OVD rows dataset mAP / AP50 (recomputed per replicate); a positive
    control that shows a difference passes, a negative control that shows one fails."""
    box = [10, 10, 50, 50]
    rows = [{"sample_id": f"r{i}", "split": "ref:val", "task": "rec", "width": 100, "height": 100,
             "solution": json.dumps([{"label": "x", "bbox": box}])} for i in range(30)]  # fmt: skip
    rows += [{"sample_id": f"o{i}", "split": "coco:val", "task": "ovd", "width": 100, "height": 100,
              "solution": json.dumps([{"label": "dog", "bbox": box}])} for i in range(30)]  # fmt: skip
    good = ["<answer>[10, 10, 50, 50]</answer>"] * 30 + [
        '<answer>[{"bbox_2d": [10, 10, 50, 50], "label": "dog"}]</answer>'
    ] * 30
    bad = ["<answer>[60, 60, 90, 90]</answer>"] * 30 + ["<answer>None</answer>"] * 30
    arms = [
        ArmResult("good", "none", [0, 1], 10, 0, [_results(rows, good)] * 2),
        ArmResult("bad", "none", [0, 1], 10, 3, [_results(rows, bad)] * 2),
    ]
    c = compare(arms, [Comparison(a="good", b="bad", control="positive"),
                       Comparison(a="good", b="bad", control="negative")], rows, n_boot=200)  # fmt: skip
    metrics = {(r["task"], r["metric"]) for r in c["arms"]}
    assert metrics == {("rec", "acc@0.5"), ("rec", "mean_iou"), ("ovd", "mAP"), ("ovd", "AP50")}
    ovd_good = next(r for r in c["arms"] if r["arm"] == "good" and r["metric"] == "mAP")
    assert ovd_good["value"] == pytest.approx(1.0) and ovd_good["low"] == pytest.approx(1.0)
    # two splits: the controls are judged on both pooled ("all"), per task; the per-split pairs stay in "pairs"
    assert sorted((x["control"], x["split"], x["metric"], x["passed"]) for x in c["controls"]) == [
        ("negative", "all", "acc@0.5", False), ("negative", "all", "mAP", False),
        ("positive", "all", "acc@0.5", True), ("positive", "all", "mAP", True),
    ]  # fmt: skip
    assert {r["split"] for r in c["pairs"]} == {"ref:val", "coco:val", "all"}
    assert all(r["leaked"] == 3 for r in c["arms"] if r["arm"] == "bad")
