"""VLM-R1 jsonl ingest and image probing: tasks from answers, strict ground truth, image defects become rejects."""

import json
import os

import pytest

from curation.images import ImageCheck, probe
from curation.ingest import ingest
from curation.testing.fixtures import JSONL_DEFECTS, make_vlmr1_jsonl, write_jpeg
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
    import curation.images as images

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
