"""RefCOCO/+/g ingest: one sample per sentence, safe pickles, rejects, identity of pickle + instances."""

import json
import pickle
import subprocess
import sys

import pytest

from curation.demo.fixtures import REFCOCO_DEFECTS, make_refcoco, py2_pickle
from curation.ingest import ingest
from curation.ingest.refcoco import split_by
from curation.ingest.safe_pickle import UnsafePickle, load_plain
from helpers import rows as _rows
from vlmr1.records import make_sample_id, parse_solution


class _WritesAFile:
    """Unpickling this with plain pickle.load writes ``target``: what a hostile refs(unc).p could do."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (exec, (f"open({self.target!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("dataset,by", [("refcoco", "unc"), ("refcocog", "umd"), ("refcoco+", "unc")])
def test_samples_equal_the_refs_sentences_one_to_one(tmp_path, dataset, by):
    refs_path = make_refcoco(tmp_path, dataset=dataset, split_by=by)
    db = tmp_path / "c.duckdb"
    summary = ingest("refcoco", db, refs_path)
    refs = load_plain(refs_path)  # its decoding is tested against pickle itself below
    instances = json.loads((refs_path.parent / "instances.json").read_text())
    boxes = {a["id"]: a["bbox"] for a in instances["annotations"]}
    bad_refs = {int(rid.split("/")[0]) for section, rid, _ in REFCOCO_DEFECTS if section == "refs"}
    expected = {}
    for ref in refs:
        if ref["ref_id"] in bad_refs:
            continue
        for s in ref["sentences"]:
            x, y, w, h = boxes[ref["ann_id"]]
            expected[(ref["ref_id"], s["sent_id"])] = (
                f"{by}/{ref['split']}",
                s["sent"],
                s["raw"],
                ref["ann_id"],
                [x, y, x + w, y + h],
            )
    got = {}
    for sid, ref_id, sent_id, split, problem, raw, ann_id, solution, source, task in _rows(
        db,
        "SELECT sample_id, ref_id, sent_id, split, problem, problem_raw, ann_id, solution, source, task FROM samples",
    ):
        (target,) = parse_solution(solution)
        assert target.label == problem and source == dataset and task == "rec"
        assert sid == make_sample_id(dataset, (by, ref_id, sent_id))
        got[(ref_id, sent_id)] = (split, problem, raw, ann_id, list(target.bbox))
    # the one good sentence of the partly bad ref 902 is kept
    first_split = next(r["split"] for r in refs if r["ref_id"] == 902)
    expected[(902, 9020)] = (f"{by}/{first_split}", "kept sentence", "kept sentence", 100, got[(902, 9020)][4])
    assert got == expected
    assert summary.counts["samples"] == len(expected)


def test_each_defect_is_rejected_with_index_and_reason(tmp_path):
    refs_path = make_refcoco(tmp_path)
    db = tmp_path / "c.duckdb"
    ingest("refcoco", db, refs_path)
    rejects = _rows(
        db, "SELECT section, record_id, reason, record_index, path FROM rejects ORDER BY section, record_id"
    )
    assert [(s, r) for s, r, *_ in rejects] == sorted((s, r) for s, r, _ in REFCOCO_DEFECTS)
    refs = pickle.loads(refs_path.read_bytes(), encoding="latin1")
    for (section, rid, reason, index, path), (_, _, expected) in zip(rejects, sorted(REFCOCO_DEFECTS)):
        assert reason.startswith(expected) and path == str(refs_path)
        if section == "refs":
            assert refs[index]["ref_id"] == int(rid.split("/")[0])


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    target = tmp_path / "pwned.txt"
    payload = pickle.dumps([{"ref_id": 1, "evil": _WritesAFile(target)}], protocol=2)
    # the payload is live: plain pickle would write the file (in a throwaway process)
    live = tmp_path / "live.txt"
    subprocess.run(
        [sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
        input=pickle.dumps(_WritesAFile(live)),
        check=True,
    )
    assert live.read_text() == "pwned"

    refs_path = make_refcoco(tmp_path)
    refs_path.write_bytes(payload)
    with pytest.raises(
        UnsafePickle, match=r"refs\(unc\)\.p: refused: the pickle wants to call (__builtin__|builtins)\.exec"
    ):
        load_plain(refs_path)
    db = tmp_path / "c.duckdb"
    with pytest.raises(UnsafePickle):
        ingest("refcoco", db, refs_path)
    assert not target.exists()
    assert _rows(db, "SELECT count(*) FROM sources") == [(0,)] and _rows(db, "SELECT count(*) FROM images") == [(0,)]


def test_plain_pickles_of_every_protocol_load(tmp_path):
    data = [
        {
            "ref_id": 1,
            "sentences": [{"raw": "Café  au lait", "sent_id": 2}],
            "split": "val",
            "score": 0.5,
            "ok": True,
            "n": None,
            "big": 2**70,
            "t": (1, 2),
            "s": {3},
        }
    ]
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        p = tmp_path / f"p{protocol}.p"
        p.write_bytes(pickle.dumps(data, protocol=protocol))
        assert load_plain(p) == data
    p = tmp_path / "py2.p"
    p.write_bytes(py2_pickle([{"raw": "Café", "n": 2**40, "x": 1.5, "t": (1,)}]))
    assert load_plain(p) == [{"raw": "Café", "n": 2**40, "x": 1.5, "t": (1,)}]
    p.write_bytes(b"\x80\x02]q\x00(K\x01")  # truncated
    with pytest.raises(ValueError, match="not a readable pickle"):
        load_plain(p)


def test_changing_instances_json_reingests_the_pickle(tmp_path):
    refs_path = make_refcoco(tmp_path)
    db = tmp_path / "c.duckdb"
    first = ingest("refcoco", db, refs_path)
    assert ingest("refcoco", db, refs_path).skipped
    inst = refs_path.parent / "instances.json"
    data = json.loads(inst.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["id"] != 101]
    inst.write_text(json.dumps(data))
    second = ingest("refcoco", db, refs_path)
    assert second.replaced == first.file_id
    assert _rows(db, "SELECT count(*) FROM samples WHERE ann_id = 101") == [(0,)]
    assert _rows(db, "SELECT count(*) FROM sources") == [(1,)]


def test_split_by_from_file_name(tmp_path):
    assert split_by(tmp_path / "refs(umd).p") == "umd" and split_by(tmp_path / "refs(google).p") == "google"
    with pytest.raises(ValueError, match="refs\\(<splitBy>\\)"):
        split_by(tmp_path / "refs.p")
