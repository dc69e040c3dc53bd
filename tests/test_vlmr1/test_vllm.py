"""vLLM for real, on CPU: the offline engine and the managed server against transformers, scoring, kills, deaths.

Every test here runs the real vLLM (the CPU build in ``.venv-vllm``, built by
``make test``) on tiny random-weight models; each engine start costs about
30 s on two cores, so the tests share what they can.
"""

import os
import signal
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml
from PIL import Image

from curation import catalog
from curation.demo.tiny_model import build_tiny_vlm
from curation.difficulty.config import ScorerConfig
from curation.difficulty.dispatch import score_with
from curation.difficulty.scoring import score_recipe
from curation.quality.recipe import load_recipe
from curation.ray_cluster import RaySpec
from curation.selection.select import candidates
from helpers import coco_and_refcoco_catalog, kill_at_marker, rows
from kit.processes import TAG, tagged_processes, wait_until_gone
from vlmr1.prompts import build_messages
from vlmr1.rollout import Sampling, closing, make_engine
from vlmr1.rollout.base import Request
from vlmr1.rollout.openai_engine import EngineError

pytestmark = pytest.mark.slow
FAMILIES = ["qwen2_5_vl", "qwen2_vl"]  # both tiny families; vLLM supports both


@pytest.fixture(scope="module")
def fixture_catalog(tmp_path_factory):
    """A COCO + RefCOCO fixture catalog (real JPEGs, both tasks) with the ``none`` recipe evaluated."""
    return coco_and_refcoco_catalog(tmp_path_factory.mktemp("catalog"), 10, 10, recipes=("none",))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {family: build_tiny_vlm(root / family, family) for family in FAMILIES}


def fixture_requests(db, n: int = 8) -> list[Request]:
    with catalog.connect(db) as con:
        chosen = candidates(con, load_recipe("none"))[:n]
    assert {r["task"] for r in chosen} == {"rec", "ovd"}
    return [
        Request([Image.open(r["image_path"]).convert("RGB")], build_messages(r["task"], r["problem"])) for r in chosen
    ]


def token_ids(outputs) -> list[list[list[int]]]:
    for request in outputs:
        for c in request:
            assert c.token_ids and c.n_tokens == len(c.token_ids)  # counted per choice, never usage / n
    return [[c.token_ids for c in request] for request in outputs]


@pytest.mark.parametrize("family", ["qwen2_5_vl"])  # Qwen2-VL: flags in test_vllm_options (a server is 35 s)
def test_hf_offline_vllm_and_vllm_server_generate_the_same_tokens(family, models, fixture_catalog):
    requests = fixture_requests(fixture_catalog)
    greedy, sampled = Sampling.greedy(max_new_tokens=32), Sampling(n=4, max_new_tokens=24, seed=11)
    hf = make_engine("hf", str(models[family]))
    expected = token_ids(hf.generate(requests, greedy))
    image_pad = hf.model.config.image_token_id
    got = {}
    for kind in ("vllm", "vllm-server"):
        with closing(make_engine(kind, str(models[family]))) as engine:
            got[kind] = token_ids(engine.generate(requests, greedy)), token_ids(engine.generate(requests, sampled))
            assert engine.describe()["vllm"]["max_model_len"] == 4096  # from the model, not the old 8192
            if kind == "vllm-server":  # and the plain openai engine against that running server (--base-url)
                with closing(make_engine("openai", str(models[family]), base_url=engine.base_url, family=family)) as e:
                    got["openai"] = token_ids(e.generate(requests, greedy)), None
    assert all(got[kind][0] == expected for kind in got), {kind: got[kind][0] == expected for kind in got}
    sampled_ids = got["vllm-server"][1]
    assert got["vllm"][1] == sampled_ids  # the same seeds reach vLLM from both paths: offline and server agree
    assert len({tuple(ids) for request in sampled_ids for ids in request}) > len(requests)  # k differ
    assert all(image_pad not in ids for request in sampled_ids for ids in request)


SCORE_AND_STOP = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import yaml
    from curation.quality.recipe import load_recipe
    from curation.difficulty.config import ScorerConfig
    from curation.difficulty.dispatch import score_with
    db, config, marker = sys.argv[1:4]

    def progress(done, total, summary):
        Path(marker).touch()
        time.sleep(600)  # killed here, between partitions, the server up

    score_with(db, load_recipe("none"), ScorerConfig.model_validate(yaml.safe_load(open(config))), progress=progress)
""")


def scorer_config(tmp_path, model) -> Path:
    config = tmp_path / "scorer.yaml"
    engine = {"kind": "vllm-server", "model": str(model)}
    sampling = {"n": 4, "max_new_tokens": 24, "seed": 5}
    config.write_text(yaml.safe_dump({"engine": engine, "sampling": sampling, "partition_size": 4}))
    return config


def scored(db):
    return (
        rows(db, "SELECT * FROM rollouts ORDER BY ALL"),
        rows(db, "SELECT * FROM difficulty ORDER BY ALL"),
    )


def test_managed_server_scores_completely_reproducibly_and_a_killed_scorer_leaves_no_vllm(
    tmp_path, models, fixture_catalog, monkeypatch
):
    """On Ray (the managed server inside an actor, under the actor's keeper): a complete difficulty table. Then
    the same scoring locally on a copy, its scorer SIGKILLed between partitions with the server up: no vLLM
    process is left, and the resumed run equals the Ray run row for row."""
    config = scorer_config(tmp_path, models["qwen2_5_vl"])
    cfg = ScorerConfig.model_validate(yaml.safe_load(config.read_text()))
    first, second = tmp_path / "a" / "c.duckdb", tmp_path / "b" / "c.duckdb"
    for db in (first, second):
        db.parent.mkdir()
        db.write_bytes(fixture_catalog.read_bytes())
    on_ray = score_with(first, load_recipe("none"), cfg.model_copy(update={"ray": RaySpec(actors=1)}))
    n_candidates = on_ray.candidates
    assert on_ray.backend == "ray: 1 actor, a local cluster" and on_ray.scored_now == n_candidates >= 12
    rollouts, difficulty = scored(first)
    assert len(difficulty) == n_candidates and len(rollouts) == 4 * n_candidates
    tag = uuid.uuid4().hex
    monkeypatch.setenv(TAG, tag)
    marker = tmp_path / "scored-one-partition"
    alive = []
    kill_at_marker(
        SCORE_AND_STOP,
        [second, config, marker],
        marker,
        300,
        "its first partition",
        lambda: alive.extend(tagged_processes(tag)),
    )
    assert len(alive) >= 3  # keeper, API server, EngineCore (at least) were running when the scorer died
    assert wait_until_gone(tag, 30) == []
    partly = rows(second, "SELECT count(*) FROM difficulty")[0][0]
    assert 4 <= partly < n_candidates
    again = score_with(second, load_recipe("none"), cfg)
    assert again.already_scored + again.scored_now + again.merged_leftovers >= n_candidates
    assert scored(second) == (rollouts, difficulty)  # the resumed local run equals the Ray run, row for row


def test_a_server_that_dies_mid_run_is_reported_and_nothing_scored_is_lost(tmp_path, models, fixture_catalog):
    db = tmp_path / "c.duckdb"
    db.write_bytes(fixture_catalog.read_bytes())
    engine = make_engine("vllm-server", str(models["qwen2_5_vl"]))

    def kill_server(done, total, summary):
        if done == 4:
            keeper = engine.server.kept.proc.pid
            server = int(Path(f"/proc/{keeper}/task/{keeper}/children").read_text().split()[0])
            os.kill(server, signal.SIGKILL)

    with closing(engine), pytest.raises(EngineError) as failure:
        score_recipe(
            db,
            load_recipe("none"),
            engine,
            ScorerConfig(sampling=Sampling(n=4, max_new_tokens=24), partition_size=4),
            progress=kill_server,
        )
    message = str(failure.value)
    assert "vLLM server for" in message and "exited with status" in message and engine.server.log.name in message
    done = rows(db, "SELECT count(*) FROM difficulty")[0][0]
    assert done >= 4
    assert rows(db, "SELECT count(*) FROM rollouts")[0][0] == 4 * done  # every merged sample whole, none torn
    assert engine.server.problem() is not None and sys.platform == "linux"
