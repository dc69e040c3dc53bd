"""Prefect end to end: a real server on 127.0.0.1, deployments served, runs started through the prefect CLI.

Covers: curate-and-train/demo to Completed with manifest, checkpoint, evaluation and artifacts, then a
retraining round (a second run with no new data doing no work is in test_readme.py, through `vlmr1 demo`); on
Ray, killing the serving process during scoring and re-running gives the same final tables as the uninterrupted
local run; the ablation comparison with equal pools. One server and one demo run serve all three: a module of
its own for the ablation ran beside this one under pytest-xdist but had to build and curate the demo again
(480 s instead of 290 s), which cost more than the overlap saved.
"""

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import duckdb
import pytest

from helpers import prefect_api, prefect_cli, served_prefect

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow  # a real Prefect server, worker and deployments


@pytest.fixture(scope="module")
def prefect(tmp_path_factory):
    yield from served_prefect(tmp_path_factory.mktemp("prefect-home"))


def _artifacts_of(prefect, flow_run_id: str) -> list[dict]:
    """Every artifact one flow run created (all versions), from the API."""
    return prefect_api(prefect.env, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})


_cli = prefect_cli


def _run(prefect, deployment, out, watch=True):
    args = ["deployment", "run", deployment, "--param", f"demo_output={out}"] + (["--watch"] if watch else [])
    return _cli(prefect.env, *args)


def test_curate_and_train_demo_deployment_then_a_retraining_round(prefect):
    out = prefect.home / "run-a"
    t0 = time.monotonic()
    r = _run(prefect, "curate-and-train/demo", out)
    first = time.monotonic() - t0
    assert r.returncode == 0 and "Completed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    last = json.loads((out / "run" / "last_run.json").read_text())
    manifest = json.loads(Path(last["manifest"]).read_text())
    assert manifest["counts"]["rows"] > 0 and (Path(last["checkpoint"]) / "config.json").exists()
    evaluation = json.loads(Path(last["evaluation"]).read_text())
    assert evaluation["metrics"] and all(m["n"] > 0 for m in evaluation["metrics"].values())
    artifacts = _cli(prefect.env, "artifact", "ls").stdout
    for key in (
        "curate-and-train-stages",
        "curate-and-train-quality-default-funnel",
        "curate-and-train-score-bands",
        "curate-and-train-train-training-curve",
        "curate-and-train-evaluate",
        "curate-and-train-quality-default-quality-plot",  # every plot, shown in a markdown artifact
        "curate-and-train-score-difficulty-plot",
        "curate-and-train-shard-train-selection-plot",  # each shard set's own (they shared one key)
        "curate-and-train-shard-eval-selection-plot",
        "curate-and-train-ingest-coco-instances-train2017",  # each ingested file's own
        "curate-and-train-ingest-jsonl-vlmr1-rec-ovd",
        "training-progress",  # progress of the long stages
        "scoring-progress",
    ):
        assert key in artifacts, artifacts
    created = _artifacts_of(prefect, last["flow_run_id"])
    keys = [a["key"] for a in created if a["type"] != "progress"]
    assert len(keys) == len(set(keys)), sorted(keys)  # no artifact replaced another's on the Artifacts page
    plots = [a for a in created if a["key"].endswith("-plot")]
    assert len(plots) == 4 and all(a["data"].startswith("![") and "data:image/png;base64," in a["data"] for a in plots)
    assert all("base64" not in a["description"] and ".png" in a["description"] for a in plots)
    rec = _cli(prefect.env, "artifact", "inspect", "curate-and-train-evaluate-rec-metrics").stdout
    assert "acc@0.5" in rec and "mAP" not in rec  # a table per task: no REC column hidden behind OVD's
    stages = _table_artifact(prefect, "curate-and-train-stages")
    facts = " ".join(row["facts"] for row in stages)
    assert all(fact in facts for fact in ("kept=", "scored now=", "rows=", "global step=")), stages
    print(f"first run {first:.1f} s")

    # a retraining round (on a copy: run-a stays the other tests' reference): re-profiling under the trained
    # policy is new work, and the round continues from it
    rounds = prefect.home / "run-a-rounds"
    shutil.copytree(out, rounds, symlinks=True)
    r = _cli(prefect.env, "deployment", "run", "curate-and-train/demo", "--param", f"demo_output={rounds}",
             "--param", "reprofile=true", "--watch")  # fmt: skip
    assert r.returncode == 0 and "Completed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    again = json.loads((rounds / "run" / "last_run.json").read_text())
    con = duckdb.connect(str(rounds / "catalog.duckdb"), read_only=True)
    runs = dict(con.execute("SELECT checkpoint, parent_run FROM runs").fetchall())
    first_run = con.execute(
        "SELECT run_id FROM runs WHERE checkpoint = ?", [str(Path(last["checkpoint"]).resolve())]
    ).fetchone()[0]
    scorers = [spec for (spec,) in con.execute("SELECT spec FROM scorers").fetchall()]
    rewards = con.execute("SELECT count(DISTINCT run_id) FROM training_rewards").fetchone()[0]
    con.close()
    assert again["checkpoint"] != last["checkpoint"] and runs[str(Path(again["checkpoint"]).resolve())] == first_run
    assert rewards == 2 and any(last["checkpoint"] in m for m in scorers)  # scored under round 1's policy


RAY = 'ray={"actors": 2, "num_cpus": 2}'


def test_on_ray_killing_the_server_process_during_scoring_then_rerun_equals_the_local_run(prefect):
    """`--param ray=...`: probing and scoring on a local Ray cluster inside their tasks. The serving process (and
    with it the flow run and its Ray cluster) is SIGKILLed during scoring; the rerun finishes the work and its
    tables equal the uninterrupted local run's (run-a), image probes included. The demo's own parameters without a
    training config: what is compared ends with scoring, and training is the test above's."""
    from flows.params import demo_params

    reference = prefect.home / "run-a"  # the uninterrupted run of the test above
    assert (reference / "run" / "last_run.json").exists()
    out = prefect.home / "run-b"
    curate_only = demo_params(out).model_copy(update={"train_config": None}).model_dump_json()
    args = ["deployment", "run", "curate-and-train/demo", "--param", f"params={curate_only}", "--param", RAY]
    started = _cli(prefect.env, *args)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 600
    while not list((out / "scoring").glob("*")) if (out / "scoring").exists() else True:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(prefect.serve.pid, signal.SIGKILL)  # the serving process and the flow run it started
    prefect.serve.wait()
    for p in _children_of_group(prefect.serve.pid):
        os.kill(p, signal.SIGKILL)
    prefect.start_serve()
    r = _cli(prefect.env, *args, "--watch")
    assert r.returncode == 0 and "Completed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    score_report = _cli(prefect.env, "artifact", "inspect", "curate-and-train-score").stdout
    assert "ray: 2 actors, a local cluster" in score_report
    tables = {run: _scored_tables(run, probes=True) for run in (reference, out)}
    assert tables[reference] == tables[out] and tables[out]["rollouts"] and tables[out]["probes"]


def _table_artifact(prefect, key: str) -> list[dict]:
    """The rows of the latest table artifact under ``key`` (as JSON: the terminal rendering wraps long cells)."""
    latest = json.loads(_cli(prefect.env, "artifact", "inspect", key, "--limit", "1", "-o", "json").stdout)[0]
    return json.loads(latest["data"]) if isinstance(latest["data"], str) else latest["data"]


def _scored_tables(run: Path, probes: bool = False) -> dict:
    """A run's rollouts and difficulty (scorer key aside: the model path differs per run), and its image probes."""
    queries = {t: f"SELECT * EXCLUDE (scorer_key) FROM {t} ORDER BY ALL" for t in ("rollouts", "difficulty")}
    if probes:
        queries["probes"] = "SELECT width, height, sha256, phash, error FROM image_probes ORDER BY ALL"
    con = duckdb.connect(str(run / "catalog.duckdb"), read_only=True)
    try:
        return {name: con.execute(sql).fetchall() for name, sql in queries.items()}
    finally:
        con.close()


def _children_of_group(pgid):
    pids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.getpgid(int(p)) == pgid:
                    pids.append(int(p))
            except ProcessLookupError:
                pass
    return pids


def test_ablation_deployment_compares_recipes_on_equal_pools(prefect):
    """none vs default, 2 seeds each, on one fixed evaluation set: intervals and a verdict per pair and metric,
    REC and OVD tables apart, the plot as an image artifact."""
    out = prefect.home / "run-a"  # the demo run's output: its catalog is curated already, the ablation scores it
    r = _run(prefect, "ablation/demo", out)
    assert r.returncode == 0 and "Completed" in r.stdout, r.stdout[-3000:]
    comparison = json.loads((out / "ablation" / "comparison" / "comparison.json").read_text())
    arms = comparison["arms"]
    assert {a["arm"] for a in arms} == {"none", "default"} and {a["seeds"] for a in arms} == {2}
    assert len({a["pool_size"] for a in arms}) == 1 and all(a["low"] <= a["value"] <= a["high"] for a in arms)
    assert {(a["task"], a["metric"]) for a in arms} >= {("rec", "acc@0.5"), ("ovd", "mAP")}
    assert all((a["task"] == "rec") == (a["metric"] in ("acc@0.5", "mean_iou")) for a in arms)
    pairs = comparison["pairs"]
    assert pairs and all(p["a"] == "default" and p["b"] == "none" and p["verdict"] for p in pairs)
    rec = _cli(prefect.env, "artifact", "inspect", "ablation-arms-rec").stdout
    assert "acc@0.5" in rec and "mAP" not in rec
    plot = _cli(prefect.env, "artifact", "inspect", "ablation-comparison-plot").stdout
    assert "data:image/png;base64," in plot
    evaluations = {
        json.loads(p.read_text())["data"] for p in (out / "ablation" / "train").glob("*/seed*/final/eval/*.json")
    }
    assert evaluations == {"eval"}, "every arm and seed is evaluated on the one evaluation set"
    assert (out / "ablation" / "comparison" / "comparison.png").exists()
