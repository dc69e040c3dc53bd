"""D3 ingest: intra-group pairs, no-target pairs as "None", absence flags, evaluation-only pool."""

import json
import pickle

from curation.demo.fixtures import D3_DEFECTS, make_d3
from curation.ingest import ingest
from helpers import rows as _rows
from vlmr1.records import parse_solution


def test_every_image_gets_every_description_of_its_group(tmp_path):
    path = make_d3(tmp_path)
    db = tmp_path / "c.duckdb"
    summary = ingest("d3", db, path)
    data = json.loads(path.read_text())
    groups = pickle.loads((tmp_path / "d3_pkl" / "groups.pkl").read_bytes())
    sentences = pickle.loads((tmp_path / "d3_pkl" / "sentences.pkl").read_bytes())
    known = {im["id"] for im in data["images"]}
    expected = {
        (i, s)
        for g in groups.values()
        for i in g["img_id"]
        if i in known
        for s in g["inner_sent_id"]
        if s in sentences
    }
    rows = _rows(db, "SELECT image_id, sent_id, problem, solution, split, task, eval_only, attributes FROM samples")
    assert {(r[0], r[1]) for r in rows} == expected and summary.counts["samples"] == len(expected)
    boxes = {}
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        boxes.setdefault((a["image_id"], a["category_id"]), []).append((x, y, x + w, y + h))
    negatives = 0
    for image_id, sent_id, problem, solution, split, task, eval_only, attributes in rows:
        text = sentences[sent_id]["raw_sent"]
        assert problem == f"'{text}'" and split == "all" and task == "ovd" and eval_only
        targets = parse_solution(solution)
        assert [t.bbox for t in targets] == boxes.get((image_id, sent_id), []) and all(
            t.label == text for t in targets
        )
        negatives += not targets
        attrs = json.loads(attributes)
        assert (
            attrs["absence"] == sentences[sent_id]["is_negative"]
            and sent_id in groups[attrs["group_id"]]["inner_sent_id"]
        )
    assert 0 < negatives < len(rows)  # no-target pairs are kept as "None" samples, and there are positives too


def test_defects_are_rejected_and_the_rest_ingested(tmp_path):
    path = make_d3(tmp_path)
    db = tmp_path / "c.duckdb"
    ingest("d3", db, path)
    rejects = _rows(db, "SELECT section, record_id, reason FROM rejects ORDER BY section, record_id")
    assert [(s, r) for s, r, _ in rejects] == sorted((s, r) for s, r, _ in D3_DEFECTS)
    for (_, _, reason), (_, _, expected) in zip(rejects, sorted(D3_DEFECTS)):
        assert reason.startswith(expected)


def test_without_pickles_only_annotated_pairs(tmp_path):
    path = make_d3(tmp_path)
    db = tmp_path / "c.duckdb"
    (tmp_path / "d3_pkl" / "groups.pkl").unlink()
    ingest("d3", db, path)
    data = json.loads(path.read_text())
    annotated = {(a["image_id"], a["category_id"]) for a in data["annotations"] if a["id"] != 6001}
    assert {(r[0], r[1]) for r in _rows(db, "SELECT image_id, sent_id FROM samples")} == annotated
    assert _rows(db, "SELECT count(*) FROM samples WHERE solution = '[]'") == [(0,)]
    (options,) = _rows(db, "SELECT options FROM sources")[0]
    assert json.loads(options)["pairs"] == "annotated only"
