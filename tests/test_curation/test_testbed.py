"""The learnable testbed: real RefCOCO files whose planted defects the default recipe finds at the planted
counts, a noisy copy with the planted share of wrong boxes, and arm pools checked for leakage."""

import json

import duckdb
import pytest
from PIL import Image

from curation.ablation.arms import equal_pools, leakage
from curation.demo.shapes import SIZE
from curation.demo.testbed import CLEAN, NOISY, TestbedSpec, write_testbed
from curation.ingest import make_reader
from curation.ingest.images import ImageCheck
from curation.ingest.store import ingest_file
from curation.quality.apply import evaluate_recipe
from curation.quality.recipe import load_recipe
from curation.selection.select import select

SPEC = TestbedSpec(train_images=160, eval_images=60)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    root = tmp_path_factory.mktemp("testbed")
    bed = write_testbed(root, SPEC)
    catalog = root / "catalog.duckdb"
    for kind, path, images in bed.sources():
        ingest_file(str(catalog), str(path), make_reader(kind), images=ImageCheck([images]))
    return bed, catalog


def _flags(catalog, recipe) -> dict[tuple[str, str], int]:
    evaluate_recipe(str(catalog), recipe)
    con = duckdb.connect(str(catalog), read_only=True)
    rows = con.execute(
        "SELECT s.source, q.rule, count(*) FROM quality_flags q JOIN samples s USING (sample_id) "
        "WHERE q.recipe_hash = ? GROUP BY ALL",
        [recipe.hash],
    ).fetchall()
    con.close()
    return {(src, rule): n for src, rule, n in rows}


def test_files_are_real_and_rewritten_only_when_the_spec_changes(bed):
    b, _ = bed
    with Image.open(next(b.images.glob("*.jpg"))) as img:
        assert img.format == "JPEG" and img.size == (SIZE, SIZE)
    stamp = (b.root / "testbed.json").stat().st_mtime_ns
    assert write_testbed(b.root, SPEC).planted == b.planted
    assert (b.root / "testbed.json").stat().st_mtime_ns == stamp


def test_default_finds_what_was_planted(bed):
    b, catalog = bed
    flags = _flags(catalog, load_recipe(b.recipes["tb-default"]))
    p = b.planted
    assert all(p[k] > 0 for k in ("ambiguous", "degenerate", "out_of_bounds", "near_duplicate", "leakage"))
    assert flags[(CLEAN, "degenerate_box")] == p["degenerate"]
    assert flags[(CLEAN, "box_out_of_bounds")] == p["out_of_bounds"]
    assert flags[(CLEAN, "eval_leakage")] == p["leakage"]
    assert flags[(CLEAN, "non_unique_ref")] == p["ambiguous"]
    # pHash also pairs a few distinct scenes (simple pictures): at least the planted ones, not many more
    assert p["near_duplicate"] <= flags[(CLEAN, "near_duplicate_image")] <= 1.5 * p["near_duplicate"] + 10


def test_noisy_source_points_the_planted_share_at_other_objects(bed):
    b, catalog = bed
    con = duckdb.connect(str(catalog), read_only=True)
    pairs = con.execute(f"""
        SELECT c.solution = n.solution FROM samples c JOIN samples n
          ON c.source = '{CLEAN}' AND n.source = '{NOISY}' AND c.ref_id = n.ref_id
          AND c.sent_id = n.sent_id""").fetchall()
    con.close()
    wrong = sum(not same for (same,) in pairs)
    assert len(pairs) == b.planted["train_refs"]
    assert wrong == b.planted["wrong_box"]  # every planted wrong box is a different box than the clean one
    assert SPEC.wrong_box - 0.1 < wrong / len(pairs) < SPEC.wrong_box + 0.05
    assert json.loads((b.root / "testbed.json").read_text())["spec"]["wrong_box"] == SPEC.wrong_box


def test_arm_pools_equal_and_leakage_counted(bed):
    b, catalog = bed
    recipes = {name: load_recipe(p) for name, p in b.recipes.items()}
    for r in recipes.values():
        evaluate_recipe(str(catalog), r)
    evaluate_recipe(str(catalog), load_recipe("default"))
    evaluation = select(catalog, load_recipe("default"), None, pool="eval")
    pools = equal_pools({n: select(catalog, r, None) for n, r in recipes.items()}, dict.fromkeys(recipes))
    assert len({len(s) for s in pools.values()}) == 1
    leaks = {n: leakage(catalog, s.table["sample_id"], evaluation.table["sample_id"]) for n, s in pools.items()}
    assert leaks["tb-default"] == 0
    assert 0 < leaks["tb-none"] <= b.planted["leakage"] and 0 < leaks["tb-noisy"] <= b.planted["leakage"]
    full = select(catalog, recipes["tb-none"], None)
    assert leakage(catalog, full.table["sample_id"], evaluation.table["sample_id"]) == b.planted["leakage"]


def test_scaling_arms_are_nested_and_bands_are_their_own_recipe(bed):
    """Pool-size arms of one recipe are nested subsets (a data-scaling curve adds data, it does not swap it); a
    band arm is its recipe with that band, under its own hash; arm names and compared pairs are checked."""
    from curation.ablation.arms import Arm, arms_from
    from flows.params import AblationParams

    b, catalog = bed
    arms = arms_from([], [Arm(name="clean", recipe=str(b.recipes["tb-none"]))], [40, 120])
    assert [(a.name, a.pool_size) for a in arms] == [("clean", None), ("clean@40", 40), ("clean@120", 120)]
    recipe = load_recipe(b.recipes["tb-none"])
    evaluate_recipe(str(catalog), recipe)
    sel = select(catalog, recipe, None)
    pools = equal_pools({a.name: sel for a in arms}, {a.name: a.pool_size for a in arms})
    small, large = (set(pools[n].table["sample_id"]) for n in ("clean@40", "clean@120"))
    assert len(small) == 40 and len(large) == 120 and small < large
    assert len(pools["clean"]) == len(sel)
    band = Arm(name="mid", recipe=str(b.recipes["tb-none"]), band=(0.2, 0.8)).effective_recipe()
    assert (band.selection.difficulty.min_pass_rate, band.selection.difficulty.max_pass_rate) == (0.2, 0.8)
    assert band.hash != recipe.hash
    with pytest.raises(ValueError, match="no arm named"):
        AblationParams(catalog="c", output="o", train_config="t", recipes=["none"], compare=[{"a": "none", "b": "x"}])
    with pytest.raises(ValueError, match="unique"):
        arms_from(["none", "none"], [], [])


def test_the_ablation_page_parameters_are_valid():
    """The parameter example of the ablation page (docs/ablations.md) validates as it is written."""
    from pathlib import Path

    import yaml

    from flows.params import AblationParams

    text = (Path(__file__).resolve().parents[2] / "docs" / "ablations.md").read_text()
    block = text.split("Parameters (`flows.params.AblationParams`):", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    params = AblationParams.model_validate(yaml.safe_load(block))
    assert [a.name for a in params.all_arms()] == ["none", "default", "default-mid", "none-again"]
    assert [(c.a, c.b, c.control) for c in params.comparisons()] == [
        ("default", "none", None),
        ("none", "none-again", "negative"),
    ]
