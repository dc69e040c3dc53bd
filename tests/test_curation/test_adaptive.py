"""Adaptive pass@k: the stopping rule on planted pass rates, and the scorer's rounds, whose rollouts are a prefix of
a fixed run's (a scripted engine with planted pass rates here; the tiny model in test_difficulty.py)."""

import json
import random

import duckdb
import numpy as np
import pytest
from PIL import Image

from curation.demo.testbed import TestbedSpec, write_testbed
from curation.difficulty.adaptive import AdaptiveConfig, fit_prior, posterior, screen, signal_interval
from curation.difficulty.config import ScorerConfig
from curation.difficulty.scoring import ScorerSpec, score_recipe
from curation.ingest import make_reader
from curation.ingest.images import ImageCheck
from curation.ingest.store import ingest_file
from curation.quality.apply import evaluate_recipe
from curation.quality.recipe import load_recipe
from kit.policies import ScriptedPolicy, pixels_key

K_MAX = 12


def test_the_signal_interval_is_where_a_group_of_g_has_signal_more_often_than_not():
    lo, hi = signal_interval(8)
    assert lo == pytest.approx(0.0830, abs=1e-4) and hi == pytest.approx(1 - lo)
    assert lo**8 + (1 - lo) ** 8 == pytest.approx(0.5) and 0.2**8 + 0.8**8 < 0.5 < 0.05**8 + 0.95**8


def test_one_pass_and_one_fail_is_mixed_for_sure_and_the_posterior_reads_the_counts():
    post = posterior(fit_prior([1, 0, 3, 0], [2, 2, 3, 8]), [1, 0, 3, 0], [2, 2, 3, 8])
    assert post.p_mixed[0] == pytest.approx(1.0) and post.p_fail[0] == 0 and post.p_pass[0] == 0
    assert post.p_fail[3] > post.p_fail[1] > 0 and post.p_pass[2] > 0  # more fails, surer of p = 0
    low, high = post.interval()
    assert (low <= post.mean).all() and (post.mean <= high).all() and post.p_no_signal[3] > post.p_no_signal[0]


@pytest.mark.parametrize("decide", ["both", "band", "signal"])
def test_the_stopping_rule_on_planted_pass_rates(decide):
    """A known-mixed sample (pass, then fail) stops at its first pass and fail; always-passing and always-failing
    ones get more; an always-failing sample among mixed ones runs to k_max (its partition believes in rare
    passes); the same outcomes always give the same rounds."""
    kinds = np.repeat(["pass", "fail", "mixed"], 16)

    def outcome(i, j):
        return np.where(kinds[i] == "pass", True, np.where(kinds[i] == "fail", False, j % 2 == 0))

    passes, rollouts = screen(outcome, len(kinds), AdaptiveConfig(decide=decide), K_MAX)
    assert (rollouts[kinds == "mixed"] == 2).all() and (passes[kinds == "mixed"] == 1).all()
    assert (rollouts[kinds != "mixed"] > 4).all() and (rollouts <= K_MAX).all()
    assert (screen(outcome, len(kinds), AdaptiveConfig(decide=decide), K_MAX)[1] == rollouts).all()
    kinds = np.array(["mixed"] * 31 + ["fail"])
    passes, rollouts = screen(outcome, len(kinds), AdaptiveConfig(decide=decide), K_MAX)
    assert rollouts[-1] == K_MAX if decide != "signal" else rollouts[-1] > 4
    assert (rollouts[:-1] == 2).all()


def test_a_budget_caps_the_mean_and_goes_to_the_least_settled_first():
    kinds = np.repeat(["pass", "fail", "mixed", "rare"], 16)
    rng = np.random.default_rng(0)
    u = rng.uniform(size=(len(kinds), K_MAX))
    rate = {"pass": 1.0, "fail": 0.0, "mixed": 0.5, "rare": 0.1}

    def outcome(i, j):
        return u[i, j] < np.array([rate[k] for k in kinds[i]])

    free = screen(outcome, len(kinds), AdaptiveConfig(), K_MAX)[1]
    capped = screen(outcome, len(kinds), AdaptiveConfig(budget=4.0), K_MAX)[1]
    assert free.mean() > 4.0 >= capped.mean() and (capped >= 2).all()


def _truth(catalog) -> dict:
    """(pixels, expression) -> the label box (x1, y1, x2, y2 in original pixels)."""
    con = duckdb.connect(str(catalog), read_only=True)
    rows = con.execute("SELECT image_path, problem, solution FROM samples").fetchall()
    con.close()
    keys, out = {}, {}
    for path, problem, solution in rows:
        px = keys.setdefault(path, pixels_key(Image.open(path)))
        out[(px, problem.strip().lower())] = tuple(json.loads(solution)[0]["bbox"])
    return out


def _planted(truth):
    """Answers with a planted pass rate per sample (0, 0.5 or 1 by its expression), each decided by its seed."""

    def answer(px, question, seeds):
        expression = question.split("describes: ", 1)[1].split(". ", 1)[0].rstrip(".").strip().lower()
        box = truth[(px, expression)]
        rate = [0.0, 0.5, 1.0][int(hash_of(expression + px)) % 3]
        far = (box[2] + 50, box[3] + 50, box[2] + 60, box[3] + 60)
        return [[("", box if random.Random(seed).random() < rate else far)] for seed in seeds]

    return answer


def hash_of(text: str) -> int:
    import hashlib

    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("adaptive")
    bed = write_testbed(root, TestbedSpec(train_images=24, eval_images=4, wrong_box=0.0))
    path = str(root / "catalog.duckdb")
    for kind, annotations, images in bed.sources():
        ingest_file(path, str(annotations), make_reader(kind), images=ImageCheck([images]))
    evaluate_recipe(path, load_recipe("none"))
    return path


def _scored(catalog, tmp_path, adaptive: AdaptiveConfig | None, name: str):
    db = tmp_path / f"{name}.duckdb"
    db.write_bytes(open(catalog, "rb").read())
    config = ScorerConfig.model_validate({"sampling": {"n": K_MAX, "seed": 3}, "partition_size": 32})
    config = config.model_copy(update={"adaptive": adaptive})
    policy = ScriptedPolicy(_planted(_truth(catalog)), name="planted", seeded=True)
    summary = score_recipe(db, load_recipe("none"), policy, config)
    con = duckdb.connect(str(db), read_only=True)
    rollouts = {}
    for sid, j, text, passed in con.execute(
        "SELECT sample_id, k_index, completion, passed FROM rollouts ORDER BY sample_id, k_index"
    ).fetchall():
        rollouts.setdefault(sid, []).append((j, text, passed))
    difficulty = {r[0]: r[1:] for r in con.execute(
        "SELECT sample_id, k, n_pass, band, p_no_signal, post_low, post_high FROM difficulty").fetchall()}  # fmt: skip
    con.close()
    return summary, rollouts, difficulty


def test_adaptive_scoring_is_a_prefix_of_fixed_k_spends_less_and_has_its_own_key(catalog, tmp_path):
    fixed, fixed_rollouts, fixed_difficulty = _scored(catalog, tmp_path, None, "fixed")
    adaptive, rollouts, difficulty = _scored(catalog, tmp_path, AdaptiveConfig(), "adaptive")
    assert adaptive.scorer_key != fixed.scorer_key and adaptive.candidates == fixed.candidates > 40
    assert set(rollouts) == set(fixed_rollouts)
    for sid, had in rollouts.items():
        assert [j for j, _, _ in had] == list(range(len(had)))  # the first ones, none skipped
        assert had == fixed_rollouts[sid][: len(had)], sid  # rollout j is fixed k's rollout j
        k, n_pass, band, p_no_signal, low, high = difficulty[sid]
        assert k == len(had) and n_pass == sum(p for _, _, p in had) and 0 <= low <= high <= 1
        assert 0 <= p_no_signal <= 1
        if 0 < n_pass < k:
            assert band == "mixed"
    spent = [len(had) for had in rollouts.values()]
    assert min(spent) == 2 and max(spent) == K_MAX and sum(spent) < 0.8 * K_MAX * len(spent)
    assert adaptive.completions == sum(spent) and fixed.completions == K_MAX * len(spent)
    assert all(v[4] is not None for v in fixed_difficulty.values())  # fixed k gets its posterior too
    assert fixed.rollouts_line() == f"fixed k = {K_MAX}"
    assert adaptive.rollouts_line().startswith("adaptive: ") and f"of at most {K_MAX}" in adaptive.rollouts_line()
    bands = adaptive.report(tmp_path / "adaptive.duckdb").tables["bands"]
    spent = {b["band"]: b["rollouts per sample"] for b in bands if b["task"] == "rec"}
    assert spent["mixed"] < spent.get("all_pass", K_MAX) and all(0 <= b["P(no signal)"] <= 1 for b in bands)


def test_the_scorer_key_names_the_adaptive_settings_and_leaves_fixed_keys_alone():
    model, family = {"path": "m", "sha256": "x"}, {"frame": "abs"}
    fixed = ScorerSpec(model, family, ScorerConfig())
    assert "adaptive" not in fixed.canonical() and "group" not in fixed.canonical()
    keys = {ScorerSpec(model, family, ScorerConfig(adaptive=a)).key for a in (None, AdaptiveConfig(),
            AdaptiveConfig(min_gain=0.05), AdaptiveConfig(decide="band"))}  # fmt: skip
    assert len(keys) == 4


def test_every_engine_seeds_completion_j_of_a_request_the_same_way():
    """vLLM (offline and server) and the openai engine send seed + done for a request's choices; with
    ``Request.seed`` the request's own seed replaces the call's, so choices 2-3 asked alone get choice 2's seed."""
    from vlmr1.rollout.base import Sampling

    sampling = Sampling(n=4, seed=10)
    assert sampling.vllm_params(3, "<pad>")["seed"] == 10 + 3 * 4
    assert sampling.vllm_params(3, "<pad>", done=2)["seed"] == 10 + 3 * 4 + 2
    two = Sampling(n=2, seed=10)
    assert two.vllm_params(0, "<pad>", seed=sampling.request_seed(3) + 2)["seed"] == 10 + 3 * 4 + 2
