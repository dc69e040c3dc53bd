"""The hardening attack suite: each case replays one attack from the audit and checks it is refused cleanly."""

import json
import os
import pickle
import time
from pathlib import Path

import duckdb
import pytest

from curation.demo.fixtures import make_coco, write_jpeg
from curation.ingest import ingest
from curation.ingest.images import ImageCheck, probe
from curation.ingest.jsonl import parse_line
from curation.ingest.safe_pickle import load_plain
from curation.quality.apply import RuleError, evaluate_recipe
from curation.quality.recipe import Recipe, RecipeError, load_recipe
from curation.quality.sandbox import PredicateError, check_predicate, sandbox
from helpers import rows as _rows
from helpers import run_vlmr1
from vlmr1.prompts import REC_QUESTION
from vlmr1.shards import ShardError, read_manifest, verify

HOSTILE_PREDICATES = [
    "1=1), false); DROP TABLE samples; --",
    "n_boxes > 1; DROP TABLE samples",
    "(SELECT count(*) FROM read_csv('/etc/passwd')) > 0",
    "n_boxes > 0 OR EXISTS (SELECT 1 FROM samples)",
    "1=1) FROM sample_features; COPY (SELECT 1) TO '/tmp/pwned.csv'; SELECT (1",
    "n_boxes > 0 ORDER BY 1",
]


@pytest.fixture(scope="module")
def catalog_db(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    db = root / "c.duckdb"
    ingest("coco", db, make_coco(root / "coco", n_images=4), images=ImageCheck([root / "coco"]))
    return db


@pytest.mark.parametrize("sql", HOSTILE_PREDICATES)
def test_a_hostile_recipe_predicate_is_refused_at_load_with_file_and_line(sql, tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: evil\nrules:\n  - name: sneaky\n    sql: {json.dumps(sql)}\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value).startswith(f"{path}:3: rules.0") and "'sneaky'" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("sql", HOSTILE_PREDICATES)
def test_a_predicate_that_skips_validation_still_cannot_touch_the_catalog(sql, catalog_db):
    """Recipe.model_construct bypasses the loader's check; the evaluation path parses again and runs apart."""
    before = _rows(catalog_db, "SELECT count(*) FROM samples")
    rule = (
        Recipe.model_fields["rules"]
        .annotation.__args__[0]
        .model_construct(rule=None, sql=sql, name="sneaky", params={}, action="drop", why=None)
    )
    recipe = Recipe.model_construct(name="evil", description="", eval_splits=["*/val"], rules=[rule])
    with pytest.raises(RuleError, match="'sneaky'"):
        evaluate_recipe(catalog_db, recipe)
    assert _rows(catalog_db, "SELECT count(*) FROM samples") == before and not Path("/tmp/pwned.csv").exists()


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY sample_features TO '{tmp}/out.csv'",
        "ATTACH '{tmp}/other.duckdb' AS other",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "EXPORT DATABASE '{tmp}/dump'",
    ],
)
def test_the_sandbox_has_no_way_out(statement, tmp_path):
    import pyarrow as pa

    box = sandbox(pa.table({"sample_id": ["a"], "n_boxes": [1]}))
    try:
        with pytest.raises(duckdb.Error):
            box.execute(statement.format(tmp=tmp_path))
    finally:
        box.close()
    assert list(tmp_path.iterdir()) == []


def test_plain_predicates_still_pass_the_check():
    for sql in ("n_boxes > 1 AND coalesce(expr_tokens, 0) < 3", "problem_norm LIKE '%dog%'", "lower(source) = 'x'"):
        check_predicate(sql)
    with pytest.raises(PredicateError, match="subquery"):
        check_predicate("n_boxes IN (SELECT 1)")


@pytest.mark.parametrize("name", ["../evil", "/abs", ".hidden", "a/b", ""])
def test_a_recipe_name_cannot_be_a_path(name, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(f"name: {json.dumps(name)}\n")
    with pytest.raises(RecipeError, match=r"r\.yaml:1: name"):
        load_recipe(path)


def _line(i, image, w=None):
    rec = {"id": i, "image": image, "conversations": []}
    rec["conversations"] += [{"from": "human", "value": "<image>" + REC_QUESTION.format(expression="the dog")}]
    rec["conversations"] += [{"from": "gpt", "value": "[1, 2, 30, 40]"}]
    return json.dumps({**rec, **({"width": w, "height": w} if w else {})})


def test_image_keys_that_leave_the_root_are_rejects_and_never_opened(tmp_path):
    root = tmp_path / "images"
    write_jpeg(root / "ok.jpg", 64, 64, 0)
    write_jpeg(tmp_path / "outside.jpg", 64, 64, 1)
    os.mkfifo(root / "fifo.jpg")
    (root / "zero.jpg").symlink_to("/dev/zero")
    keys = ["ok.jpg", "../outside.jpg", str(tmp_path / "outside.jpg"), "/etc/passwd", "a/../../outside.jpg"]
    keys += ["fifo.jpg", "zero.jpg"]
    jsonl = tmp_path / "lines.jsonl"
    jsonl.write_text("\n".join(_line(i, k, 64) for i, k in enumerate(keys)) + "\n")
    db = tmp_path / "c.duckdb"
    ingest("jsonl", db, jsonl, images=ImageCheck([root]))
    assert _rows(db, "SELECT image_key FROM samples") == [("ok.jpg",)]
    reasons = dict(_rows(db, "SELECT record_id, reason FROM rejects"))
    assert all(reasons[str(i)].startswith("image path outside the image roots") for i in (1, 2, 3, 4))
    assert all(reasons[str(i)].startswith("image not a regular file") for i in (5, 6))
    probed = [p for (p,) in _rows(db, "SELECT path FROM image_probes")]
    assert not any(p.startswith(("/etc", str(tmp_path / "outside"))) for p in probed)


def test_a_fifo_as_ingest_input_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "instances.json")
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="not a regular file"):
        ingest("coco", tmp_path / "c.duckdb", tmp_path / "instances.json")
    assert time.monotonic() - t0 < 30  # it used to block forever on open()


def test_probe_reasons_are_the_same_on_every_run(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not an image" * 10)
    a, b = probe(tmp_path / "bad.jpg"), probe(tmp_path / "bad.jpg")
    assert a.error == b.error and "0x" not in a.error and "bad.jpg" in a.error


def test_pickle_bombs_are_refused_quickly(tmp_path):
    laughs = ["lol"] * 10
    for _ in range(9):
        laughs = [laughs] * 10
    (tmp_path / "laughs.p").write_bytes(pickle.dumps(laughs, protocol=2))
    (tmp_path / "deep.p").write_bytes(b"\x80\x02" + b"]" * 1_000_000 + b"a" * 999_999 + b".")
    for name, why in (("laughs.p", "expands to more than"), ("deep.p", "nested deeper than")):
        t0 = time.monotonic()
        with pytest.raises(ValueError, match=why):
            load_plain(tmp_path / name)
        assert time.monotonic() - t0 < 10  # measured: 0.0 s and 0.6 s (it took 28-106 s and 2.3 GB)


def test_a_long_ovd_question_parses_in_linear_time():
    question = "detect the following objects: [" * 16000  # 0.5 MB; the lazy regex took 23 s on it
    line = json.dumps({"image": "a.jpg", "conversations": [{"from": "human", "value": question}]})
    line = line[:-2] + ', {"from": "gpt", "value": "None"}]}'
    t0 = time.monotonic()
    row = parse_line(line, 0, source="s", split="train", stem="x")
    assert row["task"] == "ovd" and time.monotonic() - t0 < 5


def _coco(tmp_path, anns, categories=True):
    data = {"images": [{"id": 1, "file_name": "1.jpg", "width": 100, "height": 100}], "annotations": anns}
    if categories:
        data["categories"] = [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}, {"id": 3, "name": "cow"}]
    path = tmp_path / "instances_train2017.json"
    path.write_text(json.dumps(data))
    return path


def _ann(i, bbox, cat=1):
    return {"id": i, "image_id": 1, "category_id": cat, "bbox": bbox, "area": 1, "iscrowd": 0}


def test_coco_boxes_that_overflow_or_vanish_are_rejects(tmp_path):
    path = _coco(
        tmp_path, [_ann(1, [1e308, 1e308, 1e308, 1e308]), _ann(2, [10, 10, 1e-320, 5]), _ann(3, [1, 1, 9, 9])]
    )
    db = tmp_path / "c.duckdb"
    ingest("coco", db, path)
    reasons = dict(_rows(db, "SELECT record_id, reason FROM rejects WHERE section = 'annotations'"))
    assert reasons["1"].startswith("bbox overflows") and reasons["2"].startswith("bbox has no area in xyxy")
    solutions = [json.loads(s) for (s,) in _rows(db, "SELECT solution FROM samples")]
    assert solutions == [[{"label": "dog", "bbox": [1.0, 1.0, 10.0, 10.0]}]]


def test_a_rejected_annotations_category_is_never_offered_as_absent(tmp_path):
    path = _coco(tmp_path, [_ann(1, [1, 2, float("nan"), 4], cat=2), _ann(2, [1, 1, 9, 9])])
    db = tmp_path / "c.duckdb"
    ingest("coco", db, path, absent=5)
    [(problem,)] = _rows(db, "SELECT problem FROM samples")
    assert "'dog'" in problem and "'cow'" in problem and "'cat'" not in problem  # cat is in the image


def test_a_coco_file_without_categories_gives_no_samples(tmp_path):
    db = tmp_path / "c.duckdb"
    ingest("coco", db, _coco(tmp_path, [_ann(1, [1, 1, 9, 9])], categories=False))
    assert _rows(db, "SELECT count(*) FROM samples") == [(0,)]
    assert _rows(db, "SELECT reason FROM rejects WHERE section = 'images'")[0][0].startswith("no usable categories")


def _shards(tmp_path):
    from curation.quality.apply import evaluate_recipe as evaluate
    from curation.selection.select import select
    from curation.shards.write import write_shards

    db = tmp_path / "c.duckdb"
    ingest("coco", db, make_coco(tmp_path / "coco", n_images=4), images=ImageCheck([tmp_path / "coco"]))
    evaluate(db, load_recipe("none"))
    return write_shards(select(db, load_recipe("none")), db, tmp_path / "s").parent


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda m: m["shards"][0].update(file="../../etc/passwd"), "not a file name inside the folder"),
        (lambda m: m["shards"].pop(), "differ from the manifest"),
        (lambda m: m["counts"].update(rows=m["counts"]["rows"] + 1), "the manifest counts"),
    ],
)
def test_a_tampered_manifest_is_refused(tamper, message, tmp_path):
    folder = _shards(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    tamper(manifest)
    with pytest.raises(ShardError, match=message):
        verify(folder, manifest)


def test_a_manifest_that_is_not_json_is_one_line(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ShardError, match="not JSON"):
        read_manifest(tmp_path)


def test_an_export_never_writes_outside_its_folder(tmp_path):
    from curation.exports.vlmr1_jsonl import _inside

    with pytest.raises(ValueError, match="leaves the export folder"):
        _inside(tmp_path / "out" / "images", "../../victim.txt")


def test_one_bad_file_never_stops_the_others_on_the_command_line(tmp_path):
    os.mkfifo(tmp_path / "instances_a.json")
    good = make_coco(tmp_path / "coco", n_images=3)
    out = run_vlmr1("ingest", "coco", tmp_path / "instances_a.json", good, "--catalog", tmp_path / "c.db", timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr + out.stdout
    assert "1 of 2 files failed" in out.stderr and "failed" in out.stdout
    assert _rows(tmp_path / "c.db", "SELECT count(*) FROM sources") == [(1,)]


def test_bad_records_in_a_jsonl_file_are_rejects_naming_the_line(tmp_path):
    q = REC_QUESTION.format(expression="d\ud800g")
    surrogate = json.dumps({"id": 1, "image": "a.jpg", "width": 9, "height": 9, "conversations": []})
    surrogate = surrogate[:-3] + json.dumps([{"from": "human", "value": q}, {"from": "gpt", "value": "[1, 1, 5, 5]"}])
    surrogate += "}"
    jsonl = tmp_path / "lines.jsonl"
    jsonl.write_text("\n".join([surrogate, "[" * 100_000 + "]" * 100_000, _line(3, "a.jpg", 9)]) + "\n")
    db = tmp_path / "c.duckdb"
    ingest("jsonl", db, jsonl)
    assert _rows(db, "SELECT record_index, reason FROM rejects ORDER BY 1") == [
        (0, "text is not valid UTF-8: it holds a lone surrogate"),
        (1, "line is nested too deeply to be a VLM-R1 record"),
    ]
    assert _rows(db, "SELECT count(*) FROM samples") == [(1,)]


def test_coco_ids_and_sizes_out_of_range_are_rejects(tmp_path):
    big = 2**63
    data = {
        "images": [
            {"id": 1, "file_name": "1.jpg", "width": 100, "height": 100},
            {"id": big, "file_name": "2.jpg", "width": 100, "height": 100},
            {"id": 3, "file_name": "3.jpg", "height": 100},
            {"id": 5, "file_name": "5.jpg", "width": 10**30, "height": 100},
        ],
        "annotations": [_ann(1, [1, 1, 5, 5]), {**_ann(2, [1, 1, 5, 5]), "id": big * 4}],
        "categories": [{"id": 1, "name": "dog"}],
    }
    path = tmp_path / "instances_x.json"
    path.write_text(json.dumps(data))
    db = tmp_path / "c.duckdb"
    ingest("coco", db, path)
    reasons = dict(_rows(db, "SELECT record_id, reason FROM rejects"))
    assert reasons[str(big)] == "image needs an integer id (64-bit)"
    assert reasons[str(big * 4)] == "annotation needs an integer id (64-bit)"
    assert reasons["3"].startswith("width/height must be positive integers: missing")
    assert reasons["5"].startswith("width/height must be positive integers")
    assert _rows(db, "SELECT image_id FROM samples") == [(1,)]


def test_user_errors_on_the_command_line_are_one_line(tmp_path, catalog_db):
    (tmp_path / "existing").mkdir()
    (tmp_path / "bad.duckdb").write_text("garbage")
    (tmp_path / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    cases = [
        (["rewards", "score", "-r", "iou", str(tmp_path / "deep.jsonl")], "deep.jsonl:1: nested too deeply"),
        (["shard", "none", "--catalog", str(catalog_db), "--out", str(tmp_path / "existing")], "not a shard output"),
        (["quality", "none", "--catalog", str(tmp_path / "bad.duckdb")], "not a valid DuckDB database file"),
    ]
    for args, said in cases:
        out = run_vlmr1(*args, timeout=120)
        assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr + out.stdout
        last = out.stderr.strip().splitlines()[-1]
        assert said in last  # one line naming what is wrong (after any progress notes)


def test_an_export_refuses_a_symlinked_out(tmp_path):
    from curation.exports.easyr1 import to_easyr1

    folder = _shards(tmp_path)
    (tmp_path / "victim").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "victim")
    with pytest.raises(ValueError, match="--out is a symlink"):
        to_easyr1(folder, tmp_path / "link")
    assert list((tmp_path / "victim").iterdir()) == []


def test_training_paths_are_absolute_whatever_the_working_directory(tmp_path, monkeypatch):
    from training.launch import LaunchSpec

    monkeypatch.chdir(tmp_path)
    spec = LaunchSpec("train.yaml", "shards/train", "out")
    assert (spec.config, spec.manifest, spec.output) == tuple(
        str(tmp_path / p) for p in ("train.yaml", "shards/train", "out")
    )


def test_images_by_path_are_checked_against_their_ingest_checksums(tmp_path):
    import pyarrow.parquet as pq

    from vlmr1.shards import load

    folder = _shards(tmp_path)
    assert len(load(folder, check_images=True)) > 0
    manifest = json.loads((folder / "manifest.json").read_text())
    victim = next((tmp_path / "coco").rglob("*.jpg"))
    names = [r["path"] for r in pq.read_table(folder / "images.parquet").to_pylist()]
    assert manifest["images"]["rows"] == len(names) and victim.name in {Path(n).name for n in names}
    write_jpeg(victim, 64, 48, "replaced")  # same name, other pixels
    with pytest.raises(ShardError, match=f"{victim.name}: missing or changed"):
        load(folder, check_images=True)
    assert len(load(folder)) > 0  # without the option, files by path are trusted as before


def test_d3_groups_with_unhashable_or_huge_ids_are_rejects(tmp_path):
    from curation.demo.fixtures import make_d3

    path = make_d3(tmp_path / "d3")
    groups_pkl = tmp_path / "d3" / "d3_pkl" / "groups.pkl"
    groups = pickle.loads(groups_pkl.read_bytes())
    gid, first = next(iter(groups.items()))
    groups[10**6] = {**first, "img_id": [[1, 2], 2**70] + first["img_id"], "inner_sent_id": [{"x": 1}, 2**64]}
    groups_pkl.write_bytes(pickle.dumps(groups, protocol=4))
    db = tmp_path / "c.duckdb"
    ingest("d3", db, path)
    ours = dict(_rows(db, "SELECT record_id, reason FROM rejects WHERE record_id LIKE '1000000/%'"))
    assert ours["1000000/sent {'x': 1}"].startswith("unknown sentence id")
    assert ours[f"1000000/sent {2**64}"].startswith("unknown sentence id")
    assert ours["1000000/image [1, 2]"].startswith("unknown image id")
    assert ours[f"1000000/image {2**70}"].startswith("unknown image id")
    assert _rows(db, "SELECT count(*) > 0 FROM samples") == [(True,)]


def test_a_lone_surrogate_in_a_coco_record_is_a_reject_naming_it(tmp_path):
    path = _coco(tmp_path, [_ann(1, [1, 1, 9, 9])])
    data = json.loads(path.read_text())
    data["categories"].append({"id": 9, "name": "c\ud800t"})
    path.write_text(json.dumps(data))
    db = tmp_path / "c.duckdb"
    ingest("coco", db, path)
    assert _rows(db, "SELECT section, record_index, record_id, reason FROM rejects") == [
        ("categories", 3, "9", "text is not valid UTF-8: it holds a lone surrogate")
    ]
    assert _rows(db, "SELECT count(*) FROM samples") == [(1,)]
