"""Difficulty scoring: tiny real VLMs on the hf engine, an OpenAI-compatible server in the test, kill and resume."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from curation.demo.tiny_model import build_tiny_vlm
from curation.difficulty.adaptive import AdaptiveConfig
from curation.difficulty.config import ScorerConfig
from curation.difficulty.scoring import pass_at, score_recipe
from curation.quality.recipe import load_recipe
from helpers import ChatServer, coco_and_refcoco_catalog, kill_at_marker
from helpers import rows as _rows
from vlmr1.families import get_family
from vlmr1.rewards import RewardBatch, score
from vlmr1.rollout import Sampling, make_engine
from vlmr1.rollout.openai_engine import EngineError

SAMPLING = Sampling(n=3, temperature=1.0, max_new_tokens=8, seed=7)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {fam: build_tiny_vlm(root / fam, fam) for fam in ("qwen2_5_vl", "qwen2_vl")}


@pytest.fixture(scope="module")
def base_catalog(tmp_path_factory):
    return coco_and_refcoco_catalog(tmp_path_factory.mktemp("scoring"), 6, 4)


@pytest.fixture()
def db(base_catalog, tmp_path):
    copy = tmp_path / "c.duckdb"
    shutil.copy(base_catalog, copy)
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_vl"])
def test_hf_engine_scores_every_candidate_and_rewards_are_the_training_rewards(models, db, family):
    engine = make_engine("hf", str(models[family]), batch_size=4)
    assert engine.family.name == family
    recipe = load_recipe("none")
    s = score_recipe(db, recipe, engine, ScorerConfig(sampling=SAMPLING, partition_size=8))
    assert s.scored_now == s.candidates > 0 and s.completions == 3 * s.candidates
    rollouts = _rows(
        db,
        """SELECT r.completion, r.reward, r.format, r.passed, s.solution, s.width, s.height, s.task
        FROM rollouts r JOIN samples s USING (sample_id) WHERE scorer_key = ?""",
        s.scorer_key,
    )
    assert len(rollouts) == 3 * s.candidates
    batch = RewardBatch.build(
        [r[0] for r in rollouts],
        [r[4] for r in rollouts],
        [r[5] for r in rollouts],
        [r[6] for r in rollouts],
        [r[7] for r in rollouts],
        get_family(family).frame(),
        None,
    )
    iou, mAP, fmt = score("iou", batch), score("map", batch), score("format", batch)
    expected = np.where([r[7] == "rec" for r in rollouts], np.nan_to_num(iou), np.nan_to_num(mAP))
    assert np.allclose([r[1] for r in rollouts], expected) and np.allclose([r[2] for r in rollouts], fmt)
    diff = _rows(db, "SELECT k, n_pass, pass_rate, band FROM difficulty WHERE scorer_key = ?", s.scorer_key)
    assert len(diff) == s.candidates and all(k == 3 and 0 <= rate <= 1 for k, _, rate, _ in diff)
    # eval splits and eval-only samples are never scored as training candidates
    assert _rows(
        db,
        """SELECT count(*) FROM difficulty d JOIN samples s USING (sample_id)
                        WHERE s.split NOT IN ('train2017', 'unc/train')""",
    ) == [(0,)]
    again = score_recipe(db, recipe, engine, ScorerConfig(sampling=SAMPLING, partition_size=8))
    assert again.scored_now == 0 and again.completions == 0 and again.already_scored == s.candidates


@pytest.fixture(scope="module")
def warm_models(tmp_path_factory):
    """Warm-started: greedy answers vary with the image and prompt, so a wrong cache or position shows."""
    root = tmp_path_factory.mktemp("warm")
    return {fam: build_tiny_vlm(root / fam, fam, warm_start_steps=120) for fam in ("qwen2_5_vl", "qwen2_vl")}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_vl"])
def test_shared_prefill_generates_the_tokens_of_plain_generate(warm_models, tmp_path, family):
    """The engine prefills each prompt once and repeats its cache k times; plain ``generate`` on each request alone
    must agree."""
    import torch
    from PIL import Image

    from curation.demo.fixtures import make_coco
    from vlmr1.prompts import build_messages
    from vlmr1.rollout.base import Request

    make_coco(tmp_path / "coco", n_images=8)
    images = sorted((tmp_path / "coco").rglob("*.jpg"))[:6]
    requests = [
        Request(
            [Image.open(p).convert("RGB")],
            build_messages("rec", "the dog") if i % 2 else build_messages("ovd", f"'cat', 'dog{i}'"),
        )
        for i, p in enumerate(images)
    ]
    engine = make_engine("hf", str(warm_models[family]), batch_size=4)
    got = engine.generate(requests, Sampling(n=3, temperature=0.0, max_new_tokens=24))
    tok = engine.processor.tokenizer
    texts = []
    for r in requests:
        inputs = engine._inputs([r])
        with torch.inference_mode():
            ids = engine.model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=24,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
            )
        texts.append(tok.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    assert len(set(texts)) > 1, "the warm model should answer differently for different requests"
    assert [[c.text for c in row] for row in got] == [[t] * 3 for t in texts]
    # sampled: k different continuations of one prefill, reproducible from the seed
    # (temperature 1.5: the warm-started tiny model is confident enough that 4 draws at 1.0 can coincide)
    sampling = Sampling(n=4, temperature=1.5, max_new_tokens=16, seed=3)
    sampled = engine.generate(requests[:2], sampling)
    assert all(len({c.text for c in row}) > 1 for row in sampled)
    assert sampled == engine.generate(requests[:2], sampling)


@pytest.mark.slow
def test_checkpoint_generation_defaults_do_not_change_the_sampler(warm_models, tmp_path):
    """Qwen2.5-VL ships top_k=1, top_p=0.001, repetition_penalty=1.05; scoring must sample as TRL's GRPO does
    regardless."""
    import json as _json

    from PIL import Image

    from vlmr1.prompts import build_messages
    from vlmr1.rollout.base import Request

    plain = tmp_path / "plain"
    shutil.copytree(warm_models["qwen2_5_vl"], plain)
    shipped = tmp_path / "shipped"
    shutil.copytree(plain, shipped)
    config = (
        _json.loads((shipped / "generation_config.json").read_text())
        if (shipped / "generation_config.json").exists()
        else {}
    )
    config.update(do_sample=True, top_k=1, top_p=0.001, temperature=0.1, repetition_penalty=1.05)
    (shipped / "generation_config.json").write_text(_json.dumps(config))
    requests = [
        Request([Image.new("RGB", (300, 200), (40 * i, 90, 160))], build_messages("rec", "the dog")) for i in range(3)
    ]
    sampling = Sampling(n=4, temperature=1.0, max_new_tokens=32, seed=5)
    a = make_engine("hf", str(plain), batch_size=3).generate(requests, sampling)
    b_engine = make_engine("hf", str(shipped), batch_size=3)
    assert b_engine.model.generation_config.top_k == 1  # the checkpoint's defaults are loaded ...
    assert b_engine.generate(requests, sampling) == a  # ... and not used
    assert all(len({c.text for c in row}) > 1 for row in a), a  # top_k=1 would have made the k rollouts copies


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_vl"])
def test_processor_resizes_exactly_as_the_family_frame_assumes(models, family):
    from PIL import Image

    from vlmr1.processors import load_processor

    fam = get_family(family).with_pixels(max_pixels=28 * 28 * 40)
    proc = load_processor(models[family], fam)
    for w, h in [(640, 480), (333, 1000), (57, 57), (1920, 1080)]:
        out = proc(
            text=["<|vision_start|><|image_pad|><|vision_end|>x"],
            images=[Image.new("RGB", (w, h))],
            return_tensors="pt",
        )
        _, gh, gw = out["image_grid_thw"][0].tolist()
        assert (gw * 14, gh * 14) == fam.resized(w, h)


def test_pass_at_k_estimator():
    assert pass_at(8, 0, 1) == 0 and pass_at(8, 8, 1) == 1 and pass_at(8, 2, 1) == pytest.approx(0.25)
    assert pass_at(8, 2, 8) == 1.0 and pass_at(10, 3, 2) == pytest.approx(1 - (7 * 6) / (10 * 9))


def test_openai_engine_with_a_failing_then_recovering_server_gives_bands(db):
    fam = get_family("qwen2_5_vl")
    recs = _rows(
        db,
        "SELECT problem, solution, width, height FROM samples WHERE task = 'rec' AND split = 'unc/train' ORDER BY "
        "sample_id LIMIT 2",
    )
    assert len(recs) == 2
    answers = {}
    (good_problem, solution, w, h), (bad_problem, *_) = recs
    box = fam.frame().from_original([json.loads(solution)[0]["bbox"]], w, h)[0].round(1).tolist()
    right, wrong = (
        f"<think>found it</think><answer>{box}</answer>",
        "<think>guess</think><answer>[0, 0, 3, 3]</answer>",
    )
    answers[f"describes: {good_problem}."] = [right, wrong, right]
    answers[f"describes: {bad_problem}."] = [wrong]
    server = ChatServer(answers, fail_first=2)
    try:
        engine = make_engine(
            "openai", "served-model", base_url=server.url, family="qwen2_5_vl", backoff=0.01, concurrency=2
        )
        s = score_recipe(db, load_recipe("none"), engine, ScorerConfig(sampling=SAMPLING, partition_size=16))
        assert s.scored_now == s.candidates and engine.stats.extras["retries"] >= 2
    finally:
        server.close()
    sent = server.payloads[-1]
    url = sent["messages"][0]["content"][0]["image_url"]["url"]
    assert sent["n"] == 3 and url.startswith("data:image/png;base64,")
    # lossless: the server decodes exactly the pixels the engine was given
    import base64
    import io

    from PIL import Image

    from vlmr1.rollout.openai_engine import data_url

    original = Image.effect_noise((37, 23), 64).convert("RGB")
    back = Image.open(io.BytesIO(base64.b64decode(data_url(original).split(",", 1)[1])))
    assert back.tobytes() == original.tobytes()
    # every sampling knob explicit, so the server's checkpoint defaults (top_k=1, repetition_penalty=1.05) never apply
    assert (sent["temperature"], sent["top_p"], sent["top_k"], sent["repetition_penalty"]) == (1.0, 1.0, -1, 1.0)
    by_problem = {
        p: (n, band, suspect)
        for p, n, band, suspect in _rows(
            db,
            """SELECT s.problem, d.n_pass, d.band, d.suspect_annotation
        FROM difficulty d JOIN samples s USING (sample_id)""",
        )
    }
    assert by_problem[good_problem] == (2, "mixed", False)
    assert by_problem[bad_problem] == (0, "zero_std", True)  # well-formed answers that never pass: flagged for review


def test_openai_engine_refusal_is_a_clear_error(db):
    server = ChatServer({}, refuse=True)
    try:
        engine = make_engine("openai", "nope", base_url=server.url, family="qwen2_5_vl", backoff=0.01)
        with pytest.raises(EngineError, match=r"refused request 0: HTTP 400: .*does not exist"):
            score_recipe(db, load_recipe("none"), engine, ScorerConfig(sampling=SAMPLING), limit=1)
        assert server.calls == 1  # a refusal is not retried
    finally:
        server.close()


CHILD = """
import os, sys, time
from pathlib import Path
import curation.difficulty.scoring as d
from curation.difficulty.config import ScorerConfig
from curation.quality.recipe import load_recipe
from vlmr1.rollout import Sampling, make_engine
real, calls = d._write_partition, {"n": 0}
def write(path, rows):
    real(path, rows)
    calls["n"] += 1
    if calls["n"] == 3:  # the third partition is on disk, not merged: kill here
        Path(sys.argv[3]).write_text("written")
        time.sleep(120)
d._write_partition = write
engine = make_engine("hf", sys.argv[2], batch_size=4)
sampling = Sampling(n=3, temperature=1.0, max_new_tokens=8, seed=7)
adaptive = {"adaptive": {"first": 1, "step": 1}} if sys.argv[4] == "adaptive" else {}
config = ScorerConfig.model_validate({"sampling": sampling, "partition_size": 2, **adaptive})
d.score_recipe(sys.argv[1], load_recipe("none"), engine, config)
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fixed", "adaptive"])
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(models, db, tmp_path, mode):
    clean = tmp_path / "clean.duckdb"
    shutil.copy(db, clean)
    model = str(models["qwen2_5_vl"])
    marker = tmp_path / "marker"
    kill_at_marker(CHILD, [db, model, marker, mode], marker, 120, "the third partition")
    assert _rows(db, "SELECT count(DISTINCT sample_id) FROM difficulty") == [(4,)]  # two partitions merged
    engine = make_engine("hf", model, batch_size=4)
    config = ScorerConfig(sampling=SAMPLING, partition_size=2)
    if mode == "adaptive":
        config = config.model_copy(update={"adaptive": AdaptiveConfig(first=1, step=1)})
    resumed = score_recipe(db, load_recipe("none"), engine, config)
    assert (
        resumed.merged_leftovers == 2 and resumed.scored_now == resumed.candidates - 6
        # only the never-written rest is generated  # the killed run's third partition, merged without generating it
        # again
    )
    engine = make_engine("hf", model, batch_size=4)
    score_recipe(clean, load_recipe("none"), engine, config)
    for table in ("rollouts", "difficulty"):
        assert _rows(db, f"SELECT * FROM {table} ORDER BY ALL") == _rows(
            clean, f"SELECT * FROM {table} ORDER BY ALL"
        ), table
    assert (
        _rows(db, "SELECT count(*), count(DISTINCT (sample_id, k_index)) FROM rollouts")[0][0]
        == _rows(db, "SELECT count(*) FROM rollouts")[0][0]
    )


@pytest.mark.slow
def test_adaptive_rollouts_on_the_tiny_model_are_the_first_rollouts_of_the_fixed_run(models, db, tmp_path):
    """Completion j of a sample has its own seed on the hf engine: generated two at a time, beside other samples
    each round and in batches of another size, it is the one a single call for all k made."""
    fixed = tmp_path / "fixed.duckdb"
    shutil.copy(db, fixed)
    model = str(models["qwen2_5_vl"])
    config = ScorerConfig(sampling=Sampling(n=6, temperature=1.0, max_new_tokens=8, seed=7), partition_size=8)
    score_recipe(fixed, load_recipe("none"), make_engine("hf", model, batch_size=4), config)
    rounds = AdaptiveConfig(min_gain=1e-9, budget=3.0)  # all want more; the budget feeds half of each partition
    adaptive = config.model_copy(update={"adaptive": rounds})
    score_recipe(db, load_recipe("none"), make_engine("hf", model, batch_size=3), adaptive)
    query = "SELECT sample_id, k_index, completion, n_tokens FROM rollouts ORDER BY ALL"
    had, full = _rows(db, query), set(_rows(fixed, query))
    spent = {}
    for sid, *_ in had:
        spent[sid] = spent.get(sid, 0) + 1
    assert set(had) <= full and min(spent.values()) == 2 and max(spent.values()) == 4  # the budget stopped some
    assert len({text for _, _, text, _ in had}) > len(spent)  # sampled, not one answer repeated


@pytest.mark.slow
def test_cli_score_prints_bands_and_writes_the_report(models, db, tmp_path):
    import re
    from pathlib import Path

    config = tmp_path / "scorer.yaml"
    config.write_text(
        "engine:\n  kind: hf\n  batch_size: 4\nsampling:\n  n: 3\n  max_new_tokens: 6\npartition_size: 2\n"
    )
    vlmr1 = str(Path(sys.executable).parent / "vlmr1")
    cmd = [
        vlmr1,
        "score",
        "none",
        "--catalog",
        str(db),
        "--config",
        str(config),
        "--model",
        str(models["qwen2_vl"]),
        "--k",
        "2",
        "--limit",
        "3",
    ]  # --model and --k override the file
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert re.search(r"scored now\s*│\s*3\s", out.stdout) and re.search(r"completions\s*│\s*6\s", out.stdout)
    assert "bands" in out.stdout
    (key,) = _rows(db, "SELECT DISTINCT scorer_key FROM difficulty")[0]
    report = db.parent / "reports" / "difficulty" / key
    assert (report / "pass_rate.png").read_bytes()[:4] == b"\x89PNG" and "| source | task | band |" in (
        report / "difficulty.md"
    ).read_text()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0 and re.search(r"already scored\s*│\s*3\s", out.stdout)  # the limit: new samples
    assert re.search(r"scored now\s*│\s*3\s", out.stdout)


def test_cli_score_config_typo_is_one_line_naming_file_line_and_field(db, tmp_path):
    from pathlib import Path

    config = tmp_path / "scorer.yaml"
    config.write_text("engine:\n  model: m\nsampling:\n  temprature: 0.7\n")
    vlmr1 = str(Path(sys.executable).parent / "vlmr1")
    out = subprocess.run(
        [vlmr1, "score", "none", "--catalog", str(db), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "scorer.yaml:4: sampling.temprature" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_ctrl_c_in_cli_score_is_exit_130_saying_what_was_merged_and_the_same_command_resumes(models, db, tmp_path):
    """Ctrl-C in `vlmr1 score` printed a blank line and exited 130; now one line says how far it got, and the rerun
    starts from there."""
    import re
    import signal
    import time
    from pathlib import Path

    config = tmp_path / "scorer.yaml"
    config.write_text(
        "engine:\n  kind: hf\n  batch_size: 2\nsampling:\n  n: 2\n  max_new_tokens: 24\npartition_size: 1\n"
    )
    cmd = [str(Path(sys.executable).parent / "vlmr1"), "score", "none", "--catalog", str(db), "--config", str(config),
           "--model", str(models["qwen2_5_vl"])]  # fmt: skip
    env = {**os.environ, "COLUMNS": "200"}
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not list((db.parent / "scoring").glob("*/part-*")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the first partition has been generated
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    line = err.strip().splitlines()[-1]
    m = re.fullmatch(r"interrupted: (\d+) of (\d+) partitions merged; the same command resumes", line)
    assert child.returncode == 130 and m and 0 < int(m[1]) < int(m[2]), err
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and re.search(rf"already scored\s*│\s*{m[1]}\s", again.stdout), again.stdout
