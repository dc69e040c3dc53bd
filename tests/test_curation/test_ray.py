"""Ray, for real: a one-node cluster (2 CPUs) started as users get it, scoring and probing equal to one machine.

Covers: scoring on an actor pool gives the local scorer's rollouts and difficulty row for row; an actor
SIGKILLed mid-partition is restarted and its partition retried without duplicates; a driver SIGKILLed
mid-run leaves no Ray process (the local cluster runs under our keeper) and the rerun equals an
uninterrupted run; image probing on Ray Data equals the thread pool's and keeps the probe cache.
"""

import shutil
import sys
import textwrap
import uuid
from types import SimpleNamespace

import pytest

import kit.faults
from curation import catalog
from curation.demo.fixtures import make_coco
from curation.demo.tiny_model import build_tiny_vlm
from curation.difficulty.adaptive import AdaptiveConfig
from curation.difficulty.config import ScorerConfig
from curation.difficulty.ray import score_recipe_ray
from curation.difficulty.scoring import partition_seed, score_recipe
from curation.ingest import ingest
from curation.ingest.images import ImageCheck, cached_probes
from curation.quality.recipe import load_recipe
from curation.ray_cluster import RaySpec, connect
from helpers import coco_and_refcoco_catalog, kill_at_marker, rows
from kit.faults import DiesOnce
from kit.processes import TAG, tagged_processes, wait_until_gone
from vlmr1.rollout import Sampling, make_engine
from vlmr1.rollout.spec import EngineSpec

pytestmark = pytest.mark.slow
SAMPLING = Sampling(n=4, max_new_tokens=16, seed=3)
RAY = RaySpec(actors=2, num_cpus=2)
SCORER = ScorerConfig(sampling=SAMPLING, partition_size=3)
RAYCONF = SCORER.model_copy(update={"ray": RAY})
TABLES = ("SELECT * FROM rollouts ORDER BY ALL", "SELECT * FROM difficulty ORDER BY ALL")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A fixture catalog, a tiny model, the local scorer's tables as the reference, and the cluster."""
    root = tmp_path_factory.mktemp("ray")
    db = coco_and_refcoco_catalog(root, 6, 6, recipes=("none",))
    model = build_tiny_vlm(root / "model", "qwen2_5_vl")
    local = root / "local" / "c.duckdb"
    local.parent.mkdir()
    shutil.copy(db, local)
    summary = score_recipe(
        local,
        load_recipe("none"),
        make_engine("hf", str(model), batch_size=4),
        SCORER,
    )
    assert summary.scored_now == summary.candidates >= 9
    connect(RAY)
    return {"db": db, "model": model, "reference": [rows(local, q) for q in TABLES], "root": root}


def copy_of(setup, name):
    path = setup["root"] / name / "c.duckdb"
    path.parent.mkdir()
    shutil.copy(setup["db"], path)
    return path


def test_ray_scoring_equals_the_local_scorer(setup):
    db = copy_of(setup, "ray")
    spec = EngineSpec(model=str(setup["model"]), batch_size=4)
    summary = score_recipe_ray(db, load_recipe("none"), spec, RAYCONF)
    assert summary.scored_now == summary.candidates and summary.completions == 4 * summary.candidates
    assert [rows(db, q) for q in TABLES] == setup["reference"]


def test_adaptive_scoring_on_ray_equals_adaptive_scoring_here(setup):
    """Each actor runs a partition's rounds with the partition's own prior: the same rollouts as this process."""
    rounds = {"adaptive": AdaptiveConfig(first=1, step=1)}
    spec = EngineSpec(model=str(setup["model"]), batch_size=4)
    here, there = copy_of(setup, "adaptive-here"), copy_of(setup, "adaptive-ray")
    local = score_recipe(here, load_recipe("none"), spec.build(), SCORER.model_copy(update=rounds))
    on_ray = score_recipe_ray(there, load_recipe("none"), spec, RAYCONF.model_copy(update=rounds))
    assert on_ray.scorer_key == local.scorer_key and on_ray.completions == local.completions
    assert [rows(there, q) for q in TABLES] == [rows(here, q) for q in TABLES]


def test_an_actor_killed_mid_partition_is_retried_without_duplicates(setup, tmp_path):
    db, marker = copy_of(setup, "killed-actor"), tmp_path / "killed"
    spec = EngineSpec(model=str(setup["model"]), batch_size=4)
    from ray import cloudpickle  # only now: `curation.ray_cluster.connect` must see Ray unimported (its token)

    cloudpickle.register_pickle_by_value(kit.faults)  # the test kit is not on the actors' path: send the code
    dies = DiesOnce(spec, partition_seed(SimpleNamespace(sampling=SAMPLING), 1), marker)  # dies in partition 1
    summary = score_recipe_ray(db, load_recipe("none"), dies, RAYCONF)
    assert marker.exists()  # an actor did die in partition 1
    assert summary.scored_now == summary.candidates
    assert [rows(db, q) for q in TABLES] == setup["reference"]  # retried once, merged once


DRIVER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from curation.quality.recipe import load_recipe
    from curation.ray_cluster import RaySpec
    from curation.difficulty.config import ScorerConfig
    from curation.difficulty.ray import score_recipe_ray
    from vlmr1.rollout import Sampling
    from vlmr1.rollout.spec import EngineSpec
    db, model, marker = sys.argv[1:4]

    def progress(done, total, summary):
        Path(marker).touch()
        time.sleep(600)  # killed here, partitions in flight on the actors

    config = ScorerConfig(sampling=Sampling(n=4, max_new_tokens=16, seed=3), partition_size=3,
                          ray=RaySpec(actors=2, num_cpus=2))
    score_recipe_ray(db, load_recipe("none"), EngineSpec(model=model, batch_size=4), config, progress=progress)
""")


def test_a_driver_killed_mid_run_leaves_no_ray_and_the_rerun_equals_an_uninterrupted_run(setup, tmp_path, monkeypatch):
    db, marker, tag = copy_of(setup, "killed-driver"), tmp_path / "merged-one", uuid.uuid4().hex
    monkeypatch.setenv(TAG, tag)
    alive = []
    kill_at_marker(
        DRIVER,
        [db, setup["model"], marker],
        marker,
        300,
        "its first merge",
        lambda: alive.extend(tagged_processes(tag)),
    )
    assert len(alive) >= 4  # keeper, GCS, raylet, workers of the driver's own local cluster
    assert wait_until_gone(tag, 60) == []
    partly = rows(db, "SELECT count(*) FROM difficulty")[0][0]
    assert 3 <= partly < len(setup["reference"][1])
    spec = EngineSpec(model=str(setup["model"]), batch_size=4)
    again = score_recipe_ray(db, load_recipe("none"), spec, RAYCONF)
    # files the actors finished after the driver's last merge (if any) are merged first, then only the rest is scored
    assert again.already_scored + again.scored_now == again.candidates and again.already_scored >= partly
    assert [rows(db, q) for q in TABLES] == setup["reference"]


def test_probing_on_ray_equals_the_thread_pool_and_keeps_the_cache(tmp_path):
    coco = make_coco(tmp_path / "coco", n_images=12)
    images = sorted((tmp_path / "coco").rglob("*.jpg"))
    images[0].write_bytes(images[0].read_bytes()[:200])  # truncated: an error row, the same on both paths
    tables = []
    for name, ray in (("threads", None), ("ray", RAY)):
        db = tmp_path / name / "c.duckdb"
        db.parent.mkdir()
        ingest("coco", db, coco, images=ImageCheck([tmp_path / "coco"], verify=True, ray=ray))
        tables.append(
            [
                rows(db, "SELECT * EXCLUDE (probed_at) FROM image_probes ORDER BY path"),
                rows(db, "SELECT * FROM samples ORDER BY ALL"),
                rows(db, "SELECT reason FROM rejects ORDER BY ALL"),
            ]
        )
        with catalog.connect(db) as con:  # the cache: nothing is probed twice, on Ray either
            assert cached_probes(con, [str(p) for p in images], verify=True, ray=RAY) == 0
    assert tables[0] == tables[1] and tables[0][1]
    assert any("truncated" in reason or "unreadable" in reason for (reason,) in tables[0][2])
    assert "ray" in sys.modules  # asked for here; a test in test_vllm_options checks it is not imported otherwise
