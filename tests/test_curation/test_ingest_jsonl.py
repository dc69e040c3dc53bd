"""VLM-R1 jsonl ingest and image probing: tasks from answers, strict ground truth, image defects become rejects."""

import json
import os

import pytest

from curation.demo.fixtures import JSONL_DEFECTS, make_vlmr1_jsonl, write_jpeg
from curation.ingest import ingest
from curation.ingest.images import ImageCheck, probe
from helpers import rows as _rows
from vlmr1.records import parse_solution


@pytest.fixture()
def jsonl(tmp_path):
    return make_vlmr1_jsonl(tmp_path / "vlmr1")


def test_good_lines_become_rec_and_ovd_samples(jsonl, tmp_path):
    db = tmp_path / "c.duckdb"
    summary = ingest("jsonl", db, jsonl, images=ImageCheck([jsonl.parent / "images"]))
    rows = {r[0]: r[1:] for r in _rows(db, "SELECT image_key, task, problem, solution, width, height FROM samples")}
    assert set(rows) == {"a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"} and summary.counts["samples"] == 5
    assert rows["a.jpg"][:2] == ("rec", "the man on the left") and rows["a.jpg"][3:] == (320, 240)
    assert [t.bbox for t in parse_solution(rows["a.jpg"][2])] == [(10, 20, 100, 120)]
    assert rows["b.jpg"][3:] == (240, 320)  # image given as a one-element list; size from the probe
    task, problem, solution, *_ = rows["c.jpg"]
    assert (task, problem) == ("ovd", "'dog', 'person', 'cat'")
    assert [(t.label, t.bbox) for t in parse_solution(solution)] == [
        ("dog", (10, 20, 110, 140)),
        ("person", (150.5, 30, 300, 200)),
    ]
    assert rows["d.jpg"][:3] == ("ovd", "'giraffe', 'boat'", "[]")


def test_every_defect_is_a_reject_with_line_and_reason(jsonl, tmp_path):
    db = tmp_path / "c.duckdb"
    ingest("jsonl", db, jsonl, images=ImageCheck([jsonl.parent / "images"]))
    rejects = _rows(db, "SELECT record_id, reason, record_index, section FROM rejects")
    assert sorted((str(r[0]), r[1].split(":")[0]) for r in rejects) == sorted(
        (str(i), reason) for i, reason in JSONL_DEFECTS
    )
    lines = jsonl.read_text().splitlines()
    for record_id, _reason, index, section in rejects:
        if section == "lines":  # the index points at the line
            assert record_id is None or json.loads(lines[index])["id"] == int(record_id)
    by_id = {r[0]: r[1] for r in rejects}
    assert "missing.jpg" in by_id["8"] and "999x999" in by_id["10"] and "320x240" in by_id["10"]


def test_without_image_roots_unsized_lines_are_rejected_not_guessed(jsonl, tmp_path):
    db = tmp_path / "c.duckdb"
    ingest("jsonl", db, jsonl)
    sized = _rows(db, "SELECT image_key, width FROM samples ORDER BY 1")
    # only the lines that carry width/height; without roots nothing can check them (line 10's 999x999 goes in)
    assert sized == [("a.jpg", 999), ("e.jpg", 320)]
    assert _rows(db, "SELECT count(*) FROM rejects WHERE reason LIKE 'image size unknown%'")[0][0] >= 4


def test_probes_are_cached_by_path_size_and_mtime(jsonl, tmp_path, monkeypatch):
    import curation.ingest.images as images

    db = tmp_path / "c.duckdb"
    check = ImageCheck([jsonl.parent / "images"])
    ingest("jsonl", db, jsonl, images=check)
    probed = []
    real = images.probe_many
    monkeypatch.setattr(images, "probe_many", lambda paths, **kw: probed.extend(paths) or real(paths, **kw))
    copy = jsonl.with_name("copy.jsonl")
    copy.write_text(jsonl.read_text())
    assert not ingest(
        "jsonl", db, copy, images=check, source="copy"
    ).skipped  # same bytes, other options: a file of its own
    assert probed == []  # every image (the missing one too: still missing) comes from the cache
    a = jsonl.parent / "images" / "a.jpg"
    write_jpeg(a, 320, 240, seed=999)
    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 10**9))
    probed.clear()
    copy.write_text(jsonl.read_text() + "\n")  # new bytes: a new file version
    ingest("jsonl", db, copy, images=check, source="copy")
    assert probed == [str(a)]


def test_probe_facts(tmp_path):
    from PIL import Image

    p = tmp_path / "x.jpg"
    write_jpeg(p, 320, 240, seed=1)
    good = probe(p)
    assert (good.width, good.height, good.format, good.error) == (320, 240, "JPEG", None)
    assert 0 <= good.phash < 2**64 and len(good.sha256) == 64
    # pHash survives re-encoding (near duplicate), sha256 does not
    Image.open(p).save(tmp_path / "y.jpg", quality=60)
    again = probe(tmp_path / "y.jpg")
    assert again.sha256 != good.sha256 and bin(again.phash ^ good.phash).count("1") <= 6
    # a truncated JPEG passes a header probe only; verify=True decodes and finds it
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    assert probe(cut, verify=True).error.startswith("image unreadable")
    assert probe(tmp_path / "nope.jpg").error.startswith("image missing")


def test_phash_is_stored_as_ubigint_for_hamming_in_sql(jsonl, tmp_path):
    db = tmp_path / "c.duckdb"
    ingest("jsonl", db, jsonl, images=ImageCheck([jsonl.parent / "images"]))
    (n,) = _rows(
        db,
        "SELECT count(*) FROM image_probes a, image_probes b WHERE a.phash IS NOT NULL AND b.phash IS NOT NULL "
        "AND bit_count(xor(a.phash, b.phash)) = 0 AND a.path = b.path",
    )[0]
    assert n == 5


def _released_rec_item(i: int, image: str, box: list) -> dict:
    """An item as VLM-R1's released rec_jsons_processed/*.json write it (VLM-R1 issue #11 shows one)."""
    caption = f"the object number {i}"
    return {
        "id": i,
        "image": image,
        "problem": f"Please provide the bounding box coordinate of the region this sentence describes: {caption}.",
        "normal_caption": caption,
        "solution": box,
        "normalized_solution": [0, 0, 1000, 1000],
        "width": 320,
        "height": 240,
    }


def test_vlmr1_released_json_arrays_are_streamed_with_the_same_rejects_and_identity(jsonl, tmp_path):
    """VLM-R1's released REC data are JSON arrays (not jsonl): items of that shape and items shaped like jsonl
    lines both ingest; a bad item is a reject naming its index; a break in the JSON keeps what came before."""
    images = ImageCheck([jsonl.parent / "images"])
    items = [_released_rec_item(100, "a.jpg", [10, 20, 100, 120]), _released_rec_item(101, "a.jpg", [1, 2, 30, 40])]
    items.append({"id": 102, "image": "a.jpg", "problem": "where?", "solution": "nothing"})  # a bad item
    items += [json.loads(line) for line in jsonl.read_text().splitlines()[:2]]  # jsonl-shaped items
    released = tmp_path / "refcoco_train.json"
    released.write_text(json.dumps(items, indent=1))
    db = tmp_path / "c.duckdb"
    summary = ingest("jsonl", db, released, images=images)
    got = _rows(db, "SELECT image_key, task, problem, solution FROM samples ORDER BY sample_id")
    assert summary.counts["samples"] == 4 and {r[1] for r in got} == {"rec"}
    by_problem = {r[2]: r for r in got}
    assert [t.bbox for t in parse_solution(by_problem["the object number 101"][3])] == [(1, 2, 30, 40)]
    assert _rows(db, "SELECT section, record_index, record_id, split_part(reason, ':', 1) FROM rejects") == [
        ("items", 2, "102", "answer unreadable")
    ]
    # identity: the same records as jsonl lines give the same sample ids (source and stem equal)
    lines = tmp_path / "same" / "refcoco_train.jsonl"
    lines.parent.mkdir()
    lines.write_text("\n".join(json.dumps(i) for i in items[3:]) + "\n")
    ingest("jsonl", tmp_path / "d.duckdb", lines, images=images)
    from_lines = {r[0] for r in _rows(tmp_path / "d.duckdb", "SELECT sample_id FROM samples")}
    assert from_lines <= {r[0] for r in _rows(db, "SELECT sample_id FROM samples")}

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(items[:2])[:-30])  # cut inside the second item
    ingest("jsonl", tmp_path / "e.duckdb", broken, images=images)
    assert _rows(tmp_path / "e.duckdb", "SELECT count(*) FROM samples")[0][0] == 1
    (reason,) = _rows(tmp_path / "e.duckdb", "SELECT reason FROM rejects WHERE record_index = 1")[0]
    assert reason.startswith("file unreadable: the JSON array breaks here")


def test_a_lone_surrogate_in_one_id_is_one_reject_not_a_lost_file(jsonl, tmp_path):
    lines = jsonl.read_text().splitlines()
    bad = json.loads(lines[0])
    bad["id"] = "X"
    lines.append(json.dumps(bad).replace('"X"', '"\\ud800"'))  # legal JSON, not encodable as UTF-8
    jsonl.write_text("\n".join(lines) + "\n")
    db = tmp_path / "c.duckdb"
    summary = ingest("jsonl", db, jsonl, images=ImageCheck([jsonl.parent / "images"]))
    assert summary.counts["samples"] == 5  # the good lines all went in
    assert _rows(db, "SELECT record_id, reason FROM rejects WHERE record_index = ?", len(lines) - 1) == [
        ("\\ud800", "text is not valid UTF-8: it holds a lone surrogate")
    ]
