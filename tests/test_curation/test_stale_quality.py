"""No sample a recipe drops reaches scoring or shards, even when data is ingested after the recipe was evaluated."""

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation import catalog
from curation.demo.fixtures import make_coco, make_refcoco
from curation.difficulty.config import ScorerConfig
from curation.difficulty.scoring import score_recipe
from curation.ingest import ingest
from curation.ingest.images import ImageCheck
from curation.quality.apply import evaluate_recipe
from curation.quality.recipe import load_recipe
from curation.selection.select import StaleQuality, candidates, select
from helpers import rows
from vlmr1.families import get_family
from vlmr1.rollout import Sampling


@pytest.fixture()
def stale(tmp_path):
    """RefCOCO ingested and ``default`` evaluated; then a COCO file with planted defects ingested after it."""
    db = tmp_path / "c.duckdb"
    ingest(
        "refcoco",
        db,
        make_refcoco(tmp_path / "refer", n_images=6),
        images=ImageCheck([tmp_path / "refer" / "train2014"]),
    )
    evaluate_recipe(db, load_recipe("default"))
    ingest("coco", db, make_coco(tmp_path / "coco"), images=ImageCheck([tmp_path / "coco"]))
    return db


def _dropped_now(db, tmp_path):
    """What ``default`` drops on the catalog as it is now, computed on a copy so the test's catalog stays stale."""
    copy = tmp_path / "fresh.duckdb"
    copy.write_bytes(Path(db).read_bytes())
    h = evaluate_recipe(copy, load_recipe("default")).recipe_hash
    dropped = {
        r[0] for r in rows(copy, "SELECT sample_id FROM quality_flags WHERE recipe_hash = ? AND action = 'drop'", h)
    }
    with catalog.connect(copy) as con:
        kept = [r["sample_id"] for r in candidates(con, load_recipe("default"))]
    return dropped, kept


def test_library_refuses_stale_flags_naming_recipe_and_snapshot(stale):
    recipe = load_recipe("default")
    with pytest.raises(
        StaleQuality, match=rf"recipe 'default' \({recipe.hash}\) was evaluated on catalog snapshot \w{{12}}"
    ):
        select(stale, recipe)
    with pytest.raises(StaleQuality, match="re-run `vlmr1 quality default`"):
        score_recipe(stale, recipe, _NoEngine(), ScorerConfig(sampling=Sampling(n=2)))


def test_library_refuses_a_recipe_never_evaluated(stale):
    with pytest.raises(StaleQuality, match=r"recipe 'strict' \(\w+\) has no quality flags in .*c\.duckdb"):
        select(stale, load_recipe("strict"))


def test_cli_shard_re_evaluates_stale_flags_and_no_dropped_sample_reaches_the_shards(stale, tmp_path):
    dropped, kept = _dropped_now(stale, tmp_path)
    assert dropped, "the second file's planted defects must be dropped by the default recipe"
    vlmr1 = str(Path(sys.executable).parent / "vlmr1")
    out = tmp_path / "shards"
    r = subprocess.run(
        [vlmr1, "shard", "default", "--catalog", str(stale), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert r.returncode == 0, r.stderr
    assert "re-evaluated its quality flags: kept" in r.stdout  # the shard report says it did
    ids = [
        sid
        for f in sorted(out.glob("shard-*.parquet"))
        for sid in pq.read_table(f, columns=["sample_id"])["sample_id"].to_pylist()
    ]
    assert not set(ids) & dropped
    assert sorted(ids) == sorted(kept)


def test_fresh_flags_are_used_as_they_are(stale):
    recipe = load_recipe("default")
    evaluate_recipe(stale, recipe)
    with catalog.connect(stale) as con:
        assert candidates(con, recipe)  # no error once the flags match the catalog


class _NoEngine:
    """Scoring must refuse before any engine work: this engine fails the test if it is used."""

    family = get_family("qwen2_5_vl")

    class stats:  # noqa: N801
        generate_seconds, tokens, completions = 0.0, 0, 0

    def describe(self):
        return {"engine": "none", "model": "none"}

    def generate(self, requests, sampling):
        raise AssertionError("scoring ran on stale flags")
