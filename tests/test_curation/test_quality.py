"""Quality rules on the deliberately defective fixtures: each built-in rule flags exactly the samples it must."""

import json
import shutil

import pytest

from curation import catalog
from curation.demo.fixtures import make_coco, make_d3, make_refcoco, write_jpeg
from curation.ingest import ingest
from curation.ingest.images import ImageCheck
from curation.ingest.safe_pickle import load_plain
from curation.quality.apply import RuleError, diff, evaluate_recipe, flagged_ids
from curation.quality.recipe import Recipe, RecipeError, RuleSpec, load_recipe
from curation.quality.rules import BUILTIN
from helpers import run_vlmr1
from vlmr1.prompts import REC_QUESTION
from vlmr1.records import make_sample_id


def coco17(i):
    return make_sample_id("coco", ("train2017", i))


def coco14(i):
    return make_sample_id("coco", ("train2014", i))


def ref(ref_id, sent_id):
    return make_sample_id("refcoco", ("unc", ref_id, sent_id))


def line(key):
    return make_sample_id("quality_lines", ("quality_lines", key))


@pytest.fixture(scope="module")
def qcat(tmp_path_factory):
    """A catalog with every kind of defect: COCO 2017, RefCOCO, COCO 2014 over RefCOCO's images, D3, and jsonl with
    bad images kept."""
    root = tmp_path_factory.mktemp("quality")
    db = root / "c.duckdb"
    ingest("coco", db, make_coco(root / "coco"), images=ImageCheck([root / "coco"]))
    refs_path = make_refcoco(root / "refer")
    train2014 = root / "refer" / "train2014"
    ingest("refcoco", db, refs_path, images=ImageCheck([train2014]))
    # COCO train2014 annotations of the same images RefCOCO uses: RefCOCO val/test images are COCO train images
    inst = json.loads((refs_path.parent / "instances.json").read_text())
    inst["annotations"] = [a for a in inst["annotations"] if a["bbox"][2] > 0]
    coco14_path = root / "coco2014" / "instances_train2014.json"
    coco14_path.parent.mkdir()
    coco14_path.write_text(json.dumps(inst))
    ingest("coco", db, coco14_path, images=ImageCheck([train2014]))
    d3 = make_d3(root / "d3")
    ingest("d3", db, d3, images=ImageCheck([root / "d3" / "d3_images"]))
    # jsonl whose bad images are kept for the rules (each line carries its size)
    img = root / "lines"
    write_jpeg(img / "good.jpg", 320, 240, "lines:good")
    (img / "garbage.jpg").write_bytes(b"not an image" * 10)
    from PIL import Image

    Image.new("1", (10000, 9000)).save(img / "bomb.png")
    shutil.copy(
        root / "d3" / "d3_images" / "d3_000001.jpg", img / "from_d3.jpg"
    )  # a D3 (evaluation) image in training data
    d3_size = Image.open(img / "from_d3.jpg").size
    rows = [
        ("good", "good.jpg", 320, 240),
        ("missing", "missing.jpg", 320, 240),
        ("garbage", "garbage.jpg", 320, 240),
        ("bomb", "bomb.png", 10000, 9000),
        ("mismatch", "good.jpg", 999, 999),
        ("leak", "from_d3.jpg", *d3_size),
    ]
    jl = root / "quality_lines.jsonl"
    jl.write_text(
        "".join(
            json.dumps(
                {
                    "id": k,
                    "image": image,
                    "width": w,
                    "height": h,
                    "conversations": [
                        {"from": "human", "value": "<image>" + REC_QUESTION.format(expression=f"the thing in {k}")},
                        {"from": "gpt", "value": "[10, 10, 100, 100]"},
                    ],
                }
            )
            + "\n"
            for k, image, w, h in rows
        )
    )
    ingest("jsonl", db, jl, images=ImageCheck([img], reject=False))
    refs = load_plain(refs_path)
    return {"db": db, "refs": refs, "inst": inst}


def _flags(db, rule, **params):
    recipe = Recipe(name=f"only-{rule}", rules=[RuleSpec(rule=rule, params=params)])
    return flagged_ids(db, evaluate_recipe(db, recipe).recipe_hash, rule)


def _eval_images(qcat):
    rejected = {900, 901, 903, 904}  # REFCOCO_DEFECTS: these refs produced no sample
    return {r["image_id"] for r in qcat["refs"] if r["split"] != "train" and r["ref_id"] not in rejected}


EXPECTED = {
    "degenerate_box": lambda q: {coco17(4)},
    "box_out_of_bounds": lambda q: {coco17(4)},
    "tiny_box": lambda q: {coco17(4), coco17(5), line("bomb")},  # 0.5x30 px, 2x2 px, 90x90 px in 90 megapixels
    "huge_box": lambda q: {coco17(5)},
    "extreme_aspect": lambda q: {coco17(4), coco17(6)},  # 0.5x30 (1:60) and 150x1.5 (100:1)
    "crowd": lambda q: {coco17(1)},
    "expr_too_short": lambda q: {ref(951, 9510)},
    "expr_too_long": lambda q: {ref(952, 9520)},
    "non_ascii_or_empty": lambda q: {ref(950, 9500)},
    "non_unique_ref": lambda q: {ref(953, 9530), ref(954, 9540)},
    "ambiguous_target": lambda q: set(),  # no image has more than 3 same-category distractors
    "image_missing": lambda q: {line("missing")},
    "image_unreadable": lambda q: {line("garbage"), line("bomb")},
    "image_size_mismatch": lambda q: {line("mismatch")},
    "exact_duplicate_image": lambda q: {coco17(10), line("leak")},
    "near_duplicate_image": lambda q: {coco17(10), coco17(11), line("leak")},
    "eval_leakage": lambda q: {coco14(i) for i in _eval_images(q)} | {line("leak")},
    # training-signal rules fire on nothing before a run is merged (test_rounds plants a run and checks both)
    "mastered": lambda q: set(),
    "never_learned": lambda q: set(),
    # label quality fires on nothing before a scorer stored rollouts (test_label_quality plants wrong labels)
    "suspect_label": lambda q: set(),
}


def test_every_builtin_rule_has_expectations():
    assert set(EXPECTED) == set(BUILTIN)


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_builtin_rule_flags_exactly_its_samples(qcat, rule):
    expected = EXPECTED[rule](qcat)
    got = _flags(qcat["db"], rule)
    assert got == expected, f"{rule}: extra {sorted(got - expected)}, missing {sorted(expected - got)}"


def test_distractors_count_same_category_boxes_in_the_image(qcat):
    anns = [a for a in qcat["inst"]["annotations"] if a["bbox"][2] > 0]
    expected = set()
    for r in qcat["refs"]:
        target = next((a for a in anns if a["id"] == r["ann_id"]), None)
        if target is None or target["image_id"] != r["image_id"]:
            continue
        if any(
            a["id"] != target["id"]
            and a["image_id"] == target["image_id"]
            and a["category_id"] == target["category_id"]
            for a in anns
        ):
            expected |= {ref(r["ref_id"], s["sent_id"]) for s in r["sentences"] if s["sent_id"] not in (9021,)}
    got = _flags(qcat["db"], "ambiguous_target", max_distractors=0)
    assert expected and got == expected


def test_recipes_have_independent_flags_and_rerunning_is_idempotent(qcat):
    db = qcat["db"]
    default, strict = load_recipe("default"), load_recipe("strict")
    evaluate_recipe(db, default)
    evaluate_recipe(db, strict)
    with catalog.connect(db) as con:
        before = con.execute("SELECT recipe_hash, rule, sample_id, action FROM quality_flags ORDER BY ALL").fetchall()
    again = evaluate_recipe(db, default)
    with catalog.connect(db) as con:
        after = con.execute("SELECT recipe_hash, rule, sample_id, action FROM quality_flags ORDER BY ALL").fetchall()
    assert before == after
    with catalog.connect(db) as con:
        dropped = {
            h: {
                r[0]
                for r in con.execute(
                    "SELECT sample_id FROM quality_flags WHERE recipe_hash = ? AND action = 'drop'", [h]
                ).fetchall()
            }
            for h in (default.hash, strict.hash)
        }
    assert (
        default.hash != strict.hash and dropped[default.hash] < dropped[strict.hash]
    )  # strict drops what default only flags
    assert again.funnel[-1].kept_after == again.kept < again.total
    none = evaluate_recipe(db, load_recipe("none"))
    assert none.kept == none.total and flagged_ids(db, none.recipe_hash) == set()


def test_funnel_counts_are_consistent(qcat):
    r = evaluate_recipe(qcat["db"], load_recipe("default"))
    drops = set()
    for row in r.funnel:
        ids = flagged_ids(qcat["db"], r.recipe_hash, row.rule)
        assert row.flagged == len(ids)
        if row.action == "drop":
            drops |= ids
        assert row.kept_after == r.total - len(drops)


def test_invalid_custom_rule_fails_with_its_name_before_any_work(qcat):
    recipe = Recipe(name="broken", rules=[RuleSpec(rule="crowd"), RuleSpec(name="my_rule", sql="no_such_column > 3")])
    with pytest.raises(RuleError, match=r"rule 'my_rule'.*no_such_column"):
        evaluate_recipe(qcat["db"], recipe)
    with catalog.connect(qcat["db"]) as con:
        assert (
            con.execute("SELECT count(*) FROM quality_flags WHERE recipe_hash = ?", [recipe.hash]).fetchone()[0] == 0
        )


def test_custom_rule_with_parameters(qcat):
    recipe = Recipe(
        name="custom", rules=[RuleSpec(name="long_rec", sql="task = 'rec' AND expr_tokens >= {n}", params={"n": 30})]
    )
    assert flagged_ids(qcat["db"], evaluate_recipe(qcat["db"], recipe).recipe_hash) == {ref(952, 9520)}


def test_recipe_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nrules:\n  - rule: tiny_box\n    params: {min_frac: 0.1}\n  - rule: huge_box\n    params: "
        "{nope: 1}\n"
    )
    with pytest.raises(RecipeError, match=r"bad\.yaml:5: rules\.1: .*huge_box' has no parameter nope"):
        load_recipe(bad)
    bad.write_text("name: bad\nrules:\n  - rule: tiny_box\n    action: delete\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml:4: rules\.0\.action: "):
        load_recipe(bad)
    bad.write_text("name: bad\nrules:\n  - rule: not_a_rule\n")
    with pytest.raises(RecipeError, match="unknown built-in rule 'not_a_rule'"):
        load_recipe(bad)


def test_recipe_hash_is_canonical(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("name: x\nrules:\n  - rule: tiny_box  # comment\n")
    b = tmp_path / "b.yaml"
    b.write_text("# other comment\nname: x\nrules:\n  - {rule: tiny_box, params: {min_frac: 0.0005}, action: drop}\n")
    assert load_recipe(a).hash == load_recipe(b).hash
    b.write_text("name: x\nrules:\n  - {rule: tiny_box, params: {min_frac: 0.001}}\n")
    assert load_recipe(a).hash != load_recipe(b).hash


def test_diff_names_the_rules_the_recipes_disagree_on(qcat):
    d = diff(qcat["db"], load_recipe("default"), load_recipe("strict"))
    assert d.only_a_drops == {}  # strict drops everything default drops
    assert set(d.only_b_drops) <= {r.name for r in load_recipe("strict").rules} and d.only_b_drops
    assert all(who == "strict" for _, who, _ in d.examples)


def test_cli_quality_funnel_report_and_diff(qcat, tmp_path):
    db = qcat["db"]
    out = run_vlmr1("quality", "default", "--catalog", db, "--out", tmp_path / "rep", columns=200, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "eval_leakage" in out.stdout and "kept after" in out.stdout
    md = (tmp_path / "rep" / "funnel.md").read_text()
    assert "| crowd | drop | 1 |" in md
    assert (tmp_path / "rep" / "funnel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = run_vlmr1("quality", "--diff", "default", "strict", "--catalog", db, "--out", tmp_path / "d", columns=200)
    assert out.returncode == 0, out.stderr
    assert "tiny_box" in (tmp_path / "d" / "diff.md").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrules:\n  - {name: oops, sql: 'nonexistent_feature'}\n")
    out = run_vlmr1("quality", bad, "--catalog", db, columns=200, timeout=180)
    assert out.returncode == 2 and "rule 'oops'" in out.stderr


@pytest.mark.parametrize("distance", [0, 2, 4, 6])
def test_banded_near_duplicate_search_equals_brute_force(distance, monkeypatch):
    """Every band plan the cost model may pick finds exactly the pairs an all-pairs comparison finds."""
    import duckdb
    import numpy as np

    from curation.quality import features

    rng = np.random.default_rng(distance)
    base = rng.integers(0, 2**63, 400, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 400, dtype=np.uint64)
    flips = [np.uint64(sum(1 << int(b) for b in rng.choice(64, k, replace=False))) for k in rng.integers(0, 8, 200)]
    hashes = np.concatenate([base, base[:200] ^ np.array(flips, dtype=np.uint64)])
    paths = [f"img{i:04d}" for i in range(len(hashes))]
    bits = np.unpackbits(hashes.view(np.uint8).reshape(-1, 8), axis=1)
    dist = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    expected = {}
    for i in range(len(paths)):
        smaller = [dist[i, j] for j in range(len(paths)) if paths[j] < paths[i] and dist[i, j] <= distance]
        if smaller:
            expected[paths[i]] = int(min(smaller))
    plans = {(m, distance // m) for m in range(1, 9) if distance // m <= 2}
    assert plans
    for plan in plans:
        con = duckdb.connect()
        con.execute("CREATE TABLE p (path VARCHAR, phash UBIGINT)")
        con.executemany("INSERT INTO p VALUES (?, ?)", [(p, int(h)) for p, h in zip(paths, hashes)])
        monkeypatch.setattr(features, "band_plan", lambda n, d, plan=plan: plan)
        features.near_duplicates(con, "p", distance)
        got = dict(con.execute("SELECT path, distance FROM _near_dup").fetchall())
        assert got == expected, f"plan {plan}"
