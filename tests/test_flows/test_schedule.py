"""Scheduled retraining, as `make serve` runs it: a real server, a `process` work pool, `prefect deploy` of our
prefect.yaml and a worker. Only the server's scheduler creates the runs here (never `prefect deployment run`),
so a scheduler that fails every loop (prefect 3.8.8 with SQLAlchemy 2.1: "Can't evaluate bulk DML statement")
fails this test: `deployment run` worked with both."""

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from curation.demo.fixtures import make_coco
from helpers import prefect_api, start_prefect_server, stop_in_order

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow  # a real Prefect server, worker and flow run


def _runs_of(env: dict, deployment: str) -> list[dict]:
    """Every flow run of one deployment (by name), as the API returns them."""
    return prefect_api(env, "/flow_runs/filter", {"deployments": {"name": {"any_": [deployment]}}})


def _prefect(env: dict, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _interval_deployment(tmp_path: Path) -> Path:
    """A prefect.yaml with one curate-and-train deployment (a tiny COCO source: ingest, quality, shards) on an
    hourly interval schedule anchored so that its next run falls 40 s from now (the scheduler only creates runs
    still ahead of it, and `prefect deploy` took 10 s on a loaded machine); with the repository's own deployments,
    so one `prefect deploy` serves both."""
    source = make_coco(tmp_path / "coco", n_images=4)
    params = {
        "catalog": str(tmp_path / "catalog.duckdb"),
        "output": str(tmp_path / "run"),
        "sources": [{"kind": "coco", "path": str(source), "images": [str(tmp_path / "coco")]}],
    }
    anchor = datetime.now(timezone.utc) - timedelta(seconds=3600 - 40)
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    spec["deployments"] += [
        {
            "name": "hourly-test",
            "entrypoint": "flows/curate.py:curate_and_train",
            "schedules": [{"interval": 3600, "anchor_date": anchor.isoformat(), "timezone": "UTC"}],
            "parameters": {"params": params},
            "work_pool": {"name": "vlmr1-process"},
        }
    ]
    path = tmp_path / "prefect-hourly.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_scheduler_creates_the_nightly_runs_and_a_scheduled_run_completes(tmp_path):
    home = tmp_path / "prefect-home"
    home.mkdir()
    env, server = start_prefect_server(home, VLMR1_REPO=str(REPO), PREFECT_WORKER_QUERY_SECONDS="1")
    worker = None
    try:
        _prefect(env, "work-pool", "create", "vlmr1-process", "--type", "process", "--overwrite")
        # our prefect.yaml's deployments, as `make serve` deploys them, and the hourly one
        _prefect(env, "deploy", "--all", "--prefect-file", str(_interval_deployment(tmp_path)))
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", "vlmr1-process"],
            env=env,
            cwd=REPO,
            stdout=open(home / "worker.log", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline, finished = time.monotonic() + 300, None
        while finished is None and time.monotonic() < deadline:
            time.sleep(2)
            assert "bulk DML" not in (home / "server.log").read_text(), "the scheduler fails every loop"
            runs = _runs_of(env, "hourly-test")
            assert all(r["auto_scheduled"] for r in runs)  # nothing here starts a run by hand
            finished = next((r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")), None)
        logs = (home / "server.log").read_text() + (home / "worker.log").read_text()
        assert finished is not None, f"no scheduled run finished in 300 s: {runs}\n{logs[-4000:]}"
        assert finished["state_type"] == "COMPLETED", logs[-4000:]
        manifest = json.loads((tmp_path / "run" / "shards" / "train" / "manifest.json").read_text())
        assert manifest["counts"]["rows"] > 0  # the scheduled run really curated the source

        nightly = [r for r in _runs_of(env, "nightly") if r["state_type"] == "SCHEDULED"]
        assert nightly and all(r["auto_scheduled"] for r in nightly), nightly
        starts = [datetime.fromisoformat(r["expected_start_time"]).astimezone(timezone.utc) for r in nightly]
        assert all((t.hour, t.minute) == (3, 0) for t in starts), starts  # prefect.yaml's "0 3 * * *", UTC
        scheduler_errors = [line for line in logs.splitlines() if "ERROR" in line and "scheduler" in line.lower()]
        assert "bulk DML" not in logs and not scheduler_errors, scheduler_errors
    finally:
        stop_in_order(worker, server)
