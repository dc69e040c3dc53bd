"""Closing the loop (issue 19): training rewards in the catalog, lineage, mastered samples dropped by the next
round, re-profiling with a trained checkpoint as the scorer."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation import catalog
from curation.demo.inputs import write_train_config
from curation.demo.tiny_model import build_tiny_vlm
from curation.difficulty.config import ScorerConfig
from curation.difficulty.scoring import score_recipe
from curation.feedback.reprofile import band_movement
from curation.feedback.runs import RunError, lineage, record_run, trained_samples
from curation.quality.apply import evaluate_recipe
from curation.quality.recipe import Recipe, RuleSpec
from curation.quality.recipe import Selection as SelectionSpec
from curation.selection.select import StaleQuality, select
from curation.shards.write import write_shards
from helpers import coco_and_refcoco_catalog, run_vlmr1
from training.config import continued_config
from training.launch import LaunchSpec, run
from vlmr1.rollout import Sampling, make_engine

RECIPE = Recipe(
    name="rounds",
    rules=[
        RuleSpec(name="mastered", rule="mastered", action="drop"),
        RuleSpec(name="never_learned", rule="never_learned", action="flag"),
    ],
    selection=SelectionSpec(seed=1),
)


def _plant(log, mastered: list[str], never: list[str]) -> dict[str, list[float]]:
    """Rewrite the run's folded reward log: ``mastered`` samples solved (1.0) at steps 1 and 2, ``never`` at 0.0;
    the other rows as trained. Returns each planted sample's rewards."""
    rows = [r for r in pq.read_table(log).to_pylist() if r["sample_id"] not in mastered + never]
    template = dict(rows[0])
    for sid, value in [(s, 1.0) for s in mastered] + [(s, 0.0) for s in never]:
        rows += [dict(template, sample_id=sid, step=step, reward_mean=value, reward_std=0.0) for step in (1, 2)]
    pq.write_table(pa.Table.from_pylist(rows), log)
    return rows


@pytest.mark.slow
def test_two_rounds_drop_what_round_one_mastered_and_link_the_checkpoints(tmp_path):
    db = coco_and_refcoco_catalog(tmp_path, 8, 6, recipes=())
    model = build_tiny_vlm(tmp_path / "tiny", "qwen2_5_vl", warm_start_steps=120)
    config = write_train_config(tmp_path / "train.yaml", model, max_steps=1)

    # round 1: no training signal yet, every candidate selected
    evaluate_recipe(db, RECIPE)
    first = select(db, RECIPE)
    m1 = write_shards(first, db, tmp_path / "r1" / "shards")
    r1 = run(LaunchSpec(str(config), str(m1), str(tmp_path / "r1" / "train")))
    assert r1.returncode == 0, "\n".join(r1.tail)
    ids = [r["sample_id"] for r in first.rows]
    mastered, never = ids[:2], ids[2:3]
    planted = _plant(tmp_path / "r1" / "train" / "reward_log.parquet", mastered, never)
    rec1 = record_run(db, m1, tmp_path / "r1" / "train", base_model=str(model))
    assert rec1.parent_run is None and rec1.new_rewards == len(planted) and rec1.unknown_samples == 0
    assert record_run(db, m1, tmp_path / "r1" / "train", base_model=str(model)).new_rewards == 0  # idempotent

    # the merged signal changed the catalog state: flags computed before it are refused, not silently reused
    with pytest.raises(StaleQuality):
        select(db, RECIPE)
    evaluate_recipe(db, RECIPE)
    second = select(db, RECIPE)
    kept = {r["sample_id"] for r in second.rows}
    assert not kept & set(mastered) and set(never) <= kept and kept == set(ids) - set(mastered)
    with catalog.connect(db) as con:
        flagged = con.execute(
            "SELECT rule, sample_id FROM quality_flags WHERE recipe_hash = ? ORDER BY ALL", [RECIPE.hash]
        ).fetchall()
    assert flagged == sorted([("mastered", s) for s in mastered] + [("never_learned", s) for s in never])

    # round 2 continues from round 1's checkpoint; its run links to it
    m2 = write_shards(second, db, tmp_path / "r2" / "shards")
    config2 = continued_config(config, rec1.checkpoint, tmp_path / "r2")
    r2 = run(LaunchSpec(str(config2), str(m2), str(tmp_path / "r2" / "train")))
    assert r2.returncode == 0, "\n".join(r2.tail)
    rec2 = record_run(db, m2, tmp_path / "r2" / "train", base_model=rec1.checkpoint)
    assert rec2.parent_run == rec1.run_id
    chain = lineage(db, rec2.checkpoint)
    assert [r["run_id"] for r in chain] == [rec2.run_id, rec1.run_id]
    assert chain[0]["recipe"] == "rounds" and chain[0]["manifest_sha256"] != chain[1]["manifest_sha256"]

    # "which samples trained checkpoint X": exactly the logged ones, parents included
    logged1 = sorted({r["sample_id"] for r in planted})
    log2 = pq.read_table(tmp_path / "r2" / "train" / "reward_log.parquet").to_pylist()
    logged2 = sorted({r["sample_id"] for r in log2})
    assert all(r["completion_tokens"] > 0 for r in log2)
    assert trained_samples(db, rec1.checkpoint) == logged1
    assert trained_samples(db, rec2.checkpoint) == sorted(set(logged1) | set(logged2))
    assert not set(logged2) & set(mastered)

    # the same from the command line, one command
    out = run_vlmr1("lineage", rec2.checkpoint, "--catalog", db, "--samples")
    assert out.returncode == 0, out.stderr
    assert rec1.run_id in out.stdout and rec2.run_id in out.stdout and all(s in out.stdout for s in logged1)

    # re-profiling: the trained checkpoint as a scorer of its own, side by side with the base model
    sampling = Sampling(n=4, max_new_tokens=40, seed=1)
    evaluate_recipe(db, RECIPE)  # round 2's merged run made the flags stale again
    base = score_recipe(db, RECIPE, make_engine("hf", str(model), batch_size=8), ScorerConfig(sampling=sampling))
    current = score_recipe(
        db, RECIPE, make_engine("hf", rec1.checkpoint, batch_size=8), ScorerConfig(sampling=sampling)
    )
    assert base.scorer_key != current.scorer_key
    report = band_movement(db, base.scorer_key, current.scorer_key, tmp_path / "reprofile")
    assert report.counts["samples"] == len(kept) and 0 <= report.counts["moved_band"] <= len(kept)
    assert sum(r["samples"] for r in report.tables["transitions"]) == len(kept)
    assert {r["group"] for r in report.tables["source"]} == {"coco", "refcoco"}
    assert (tmp_path / "reprofile" / "reprofile.png").stat().st_size > 10_000
    print(out.stdout, (tmp_path / "reprofile" / "reprofile.md").read_text(), sep="\n")  # for the closing note


def test_an_unfinished_run_is_refused_by_name(tmp_path):
    db = coco_and_refcoco_catalog(tmp_path, 4, 3, recipes=("none",))
    from curation.quality.recipe import load_recipe

    m = write_shards(select(db, load_recipe("none")), db, tmp_path / "shards")
    (tmp_path / "train").mkdir()
    with pytest.raises(RunError, match="no train_result.json"):
        record_run(db, m, tmp_path / "train", base_model="m")
    (tmp_path / "train" / "train_result.json").write_text(json.dumps({"final": str(tmp_path / "f")}))
    with pytest.raises(RunError, match="no reward log"):
        record_run(db, m, tmp_path / "train", base_model="m")
