"""COCO ingest into the DuckDB catalog: round trip, rejects, idempotency, lock, crash safety."""

import json
import re
import subprocess
import sys
import time

import pytest

from curation import catalog
from curation.demo.fixtures import COCO_CATEGORIES, DEFECTS, make_coco
from curation.ingest import ingest
from helpers import kill_at_marker, run_vlmr1
from helpers import rows as _rows


@pytest.fixture()
def coco(tmp_path):
    return make_coco(tmp_path / "coco")


def test_round_trip_equals_pycocotools(coco, tmp_path):
    from pycocotools.coco import COCO

    db = tmp_path / "c.duckdb"
    ingest("coco", db, coco)
    ref = COCO(str(coco))
    bad_ids = {int(rid) for section, rid, _ in DEFECTS if section == "annotations"}
    ref_anns = {a["id"]: a for a in ref.dataset["annotations"] if a["id"] not in bad_ids}
    ours = {
        r[0]: r[1:]
        for r in _rows(db, "SELECT ann_id, image_id, category_id, x1, y1, x2, y2, iscrowd FROM annotations")
    }
    assert set(ours) == set(ref_anns)
    for ann_id, (image_id, cat, x1, y1, x2, y2, crowd) in ours.items():
        a = ref_anns[ann_id]
        x, y, w, h = a["bbox"]
        assert (image_id, cat, crowd) == (a["image_id"], a["category_id"], bool(a["iscrowd"]))
        assert (x1, y1, x2, y2) == pytest.approx((x, y, x + w, y + h))
    good_images = {i["id"]: i for i in ref.dataset["images"] if i["id"] != 9001}
    assert {r[0]: (r[1], r[2], r[3]) for r in _rows(db, "SELECT image_id, image_key, width, height FROM images")} == {
        k: (v["file_name"], v["width"], v["height"]) for k, v in good_images.items()
    }


def test_each_defect_is_rejected_with_file_index_and_reason(coco, tmp_path):
    db = tmp_path / "c.duckdb"
    summary = ingest("coco", db, coco)
    rejects = _rows(
        db, "SELECT section, record_id, reason, record_index, path FROM rejects ORDER BY section, record_id"
    )
    assert [(s, rid) for s, rid, *_ in rejects] == sorted((s, rid) for s, rid, _ in DEFECTS)
    data = json.loads(coco.read_text())
    for (section, rid, reason, index, path), (_, _, expected) in zip(rejects, sorted(DEFECTS)):
        assert reason.startswith(expected) and path == str(coco)
        assert str(data[section][index]["id"]) == rid  # the index points at the record
    assert summary.counts["rejects"] == len(DEFECTS)


def test_ovd_samples_one_per_image_with_non_crowd_boxes(coco, tmp_path):
    db = tmp_path / "c.duckdb"
    ingest("coco", db, coco, absent=2, seed=7)
    samples = {r[0]: r for r in _rows(db, "SELECT image_id, problem, solution, task, split FROM samples")}
    assert (
        len(samples) == 12
        and {r[3] for r in samples.values()} == {"ovd"}
        and {r[4] for r in samples.values()} == {"train2017"}
    )
    names = dict(COCO_CATEGORIES)
    for image_id, (_, problem, solution, _, _) in samples.items():
        boxes = _rows(
            db,
            "SELECT category_id, x1, y1, x2, y2 FROM annotations WHERE image_id = ? AND NOT iscrowd ORDER BY ann_id",
            image_id,
        )
        sol = json.loads(solution)
        assert [(t["label"], t["bbox"]) for t in sol] == [(names[c], [x1, y1, x2, y2]) for c, x1, y1, x2, y2 in boxes]
        listed = [p.strip("'") for p in problem.split(", ")]
        present = {names[c] for c, *_ in boxes}
        assert present <= set(listed) and len(listed) == len(present) + 2
    assert json.loads(samples[12][2]) == []  # the image without boxes is a "None" sample
    again = tmp_path / "again.duckdb"
    ingest("coco", again, coco, absent=2, seed=7)
    assert _rows(again, "SELECT sample_id, problem FROM samples ORDER BY 1") == _rows(
        db, "SELECT sample_id, problem FROM samples ORDER BY 1"
    )


def test_same_file_twice_adds_nothing_and_changed_file_replaces_its_own_rows(coco, tmp_path):
    db = tmp_path / "c.duckdb"
    val = make_coco(tmp_path / "coco", n_images=5, split="val2017", seed=1)
    ingest("coco", db, val)
    first = ingest("coco", db, coco)
    before = catalog.counts(db)
    assert ingest("coco", db, coco).skipped and catalog.counts(db) == before
    data = json.loads(coco.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 1]
    coco.write_text(json.dumps(data, allow_nan=True))
    second = ingest("coco", db, coco)
    assert second.replaced == first.file_id and not second.skipped
    assert _rows(db, "SELECT count(*) FROM annotations WHERE file_id = ?", first.file_id) == [(0,)]
    assert _rows(db, "SELECT count(*) FROM sources") == [(2,)]
    assert _rows(db, "SELECT count(*) FROM samples WHERE split = 'val2017'") == [(5,)]
    assert _rows(db, "SELECT solution FROM samples WHERE split = 'train2017' AND image_id = 1") == [("[]",)]
    assert _rows(db, "SELECT count(*), count(DISTINCT sample_id) FROM samples") == [(17, 17)]


def test_second_writer_gets_a_clear_error_with_the_pid(tmp_path):
    db = tmp_path / "c.duckdb"
    with catalog.connect(db):
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(catalog.CatalogBusy, match=f"is in use by pid {holder.pid}"):
            with catalog.connect(db, timeout=0.5):
                pass
        assert time.monotonic() - t0 < 10
    finally:
        holder.kill()
        holder.wait()
    with catalog.connect(db) as con:  # usable again once the holder is gone
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == catalog.SCHEMA_VERSION


CHILD = """
import sys, time
from pathlib import Path
import curation.ingest.store as store
calls = {"n": 0}
real = store._copy
def paused(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == 3:  # images and annotations are inserted, the transaction is open
        Path(sys.argv[3]).write_text("in transaction")
        time.sleep(120)
    return real(*args, **kwargs)
store._copy = paused
from curation.ingest import ingest
ingest("coco", sys.argv[1], sys.argv[2])
"""


def test_sigkill_mid_ingest_leaves_the_catalog_as_before_and_rerun_completes(coco, tmp_path):
    db = tmp_path / "c.duckdb"
    val = make_coco(tmp_path / "coco", n_images=5, split="val2017", seed=1)
    ingest("coco", db, val)
    before = catalog.counts(db)
    marker = tmp_path / "marker"
    kill_at_marker(CHILD, [db, coco, marker], marker, 60, "the transaction")
    assert catalog.counts(db) == before
    summary = ingest("coco", db, coco)
    assert not summary.skipped and summary.counts["samples"] == 12
    assert catalog.counts(db)["samples"] == before["samples"] + 12


def test_truncated_file_keeps_records_before_the_break(coco, tmp_path):
    raw = coco.read_bytes()
    cut = raw.index(b'"annotations"') + 2000  # mid-annotations: images survive, categories (last) do not
    broken = tmp_path / "instances_broken.json"
    broken.write_bytes(raw[:cut])
    db = tmp_path / "c.duckdb"
    summary = ingest("coco", db, broken)
    assert summary.counts["images"] == 12
    file_rejects = _rows(db, "SELECT reason FROM rejects WHERE section = 'file'")
    assert len(file_rejects) == 1 and file_rejects[0][0].startswith("JSON unreadable")


def test_cli_ingest_prints_a_summary(coco, tmp_path):
    db = tmp_path / "c.duckdb"
    out = run_vlmr1("ingest", "coco", coco, "--catalog", db, columns=400, timeout=120)  # one table row per line
    assert out.returncode == 0, out.stderr
    assert "│ new " in out.stdout and re.search(r"unknown image id\s+│\s+1 ", out.stdout), out.stdout
    out = run_vlmr1("ingest", "coco", coco, "--catalog", db, columns=400, timeout=120)
    assert "unchanged, skipped" in out.stdout


def test_fast_and_exact_readers_agree(coco, tmp_path, monkeypatch):
    """msgspec (clean files) and DuckDB JSON + SQL type rules (any file) must produce the same catalog."""
    import curation.ingest.coco as reader
    from vlmr1.records import make_sample_id

    clean = json.loads(coco.read_text())
    clean["annotations"] = [a for a in clean["annotations"] if str(a["id"]) not in {rid for _, rid, _ in DEFECTS}]
    clean_path = tmp_path / "instances_val2017.json"
    clean_path.write_text(json.dumps(clean))
    tables = "SELECT * EXCLUDE (file_id) FROM {} ORDER BY ALL"
    fast_db, exact_db = tmp_path / "fast.duckdb", tmp_path / "exact.duckdb"
    calls = []
    real = reader._load_typed_fast
    monkeypatch.setattr(reader, "_load_typed_fast", lambda con, p: calls.append(real(con, p)) or calls[-1])
    ingest("coco", fast_db, clean_path)
    assert calls == [True]
    monkeypatch.setattr(reader, "_load_typed_fast", lambda con, p: False)
    ingest("coco", exact_db, clean_path)
    for t in ("images", "annotations", "samples", "rejects"):
        assert _rows(fast_db, tables.format(t)) == _rows(exact_db, tables.format(t)), t
    ids = _rows(fast_db, "SELECT sample_id, image_id FROM samples")
    assert ids and all(sid == make_sample_id("coco", ("val2017", image_id)) for sid, image_id in ids)


def test_quality_cases_are_kept_and_images_probe_clean(coco, tmp_path):
    """Records with quality problems (not format problems) are ingested; issue 4's rules decide about them."""
    from curation.demo.fixtures import QUALITY_CASES
    from curation.ingest.images import ImageCheck

    db = tmp_path / "c.duckdb"
    summary = ingest("coco", db, coco, images=ImageCheck([coco.parent.parent]))
    assert summary.counts["rejects"] == len(DEFECTS) and summary.counts["samples"] == 12
    kept = {r[0] for r in _rows(db, "SELECT ann_id FROM annotations")}
    for kind, ids in QUALITY_CASES.items():
        if kind.startswith("coco_") and "image" not in kind:
            assert set(ids) <= kept, kind
    probes = dict(_rows(db, "SELECT path, sha256 FROM image_probes"))
    root = coco.parent.parent / "train2017"
    assert probes[str(root / f"{10:012d}.jpg")] == probes[str(root / f"{2:012d}.jpg")]
    near = _rows(
        db,
        "SELECT bit_count(xor(a.phash, b.phash)) FROM image_probes a, image_probes b WHERE a.path = ? AND b.path = ?",
        str(root / f"{11:012d}.jpg"),
        str(root / f"{3:012d}.jpg"),
    )[0][0]
    assert near <= 6
