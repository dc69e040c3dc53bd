"""The canonical sample and VLM-R1's prompts."""

import hashlib

import pyarrow.parquet as pq
import pytest

from vlmr1.prompts import build_messages, get_template, ovd_phrases
from vlmr1.records import (
    SAMPLE_SCHEMA,
    Sample,
    Target,
    from_table,
    make_sample_id,
    parse_solution,
    sample_id_sql,
    to_table,
)


def test_sample_id_is_stable_and_source_scoped():
    a = make_sample_id("refcocog", ("umd", 12, 34))
    assert a == make_sample_id("refcocog", "umd/12/34")
    assert a != make_sample_id("refcoco", ("umd", 12, 34))
    # Pinned: changing the id function would orphan every catalog row and rollout ever stored.
    assert make_sample_id("coco", 1) == hashlib.sha256(b"coco\x1f1").hexdigest()[:24] == "472dcf6801b8dd4a284064e9"
    assert len(a) == 24


def _sample(**kw):
    base = dict(
        sample_id="s1",
        source="coco",
        split="train2017",
        task="ovd",
        image_key="a.jpg",
        width=640,
        height=480,
        problem="'cat'",
        solution=(Target("cat", (1.0, 2.0, 30.0, 40.0)),),
        image_id=7,
        category_ids=(17,),
    )
    base.update(kw)
    return Sample(**base)


def test_parquet_round_trip(tmp_path):
    samples = [_sample(), _sample(sample_id="s2", task="rec", problem="left cat", ann_id=99)]
    pq.write_table(to_table(samples), tmp_path / "s.parquet")
    table = pq.read_table(tmp_path / "s.parquet")
    assert table.schema.equals(SAMPLE_SCHEMA)
    assert from_table(table) == samples


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(task="vqa"), "task must be one of"),
        (dict(width=0), "width/height must be positive"),
        (dict(task="rec", solution=()), "exactly one target"),
        (dict(image_key=""), "image_key is empty"),
    ],
)
def test_invalid_samples_are_refused_with_the_field(kw, message):
    with pytest.raises(ValueError, match=message):
        _sample(**kw)


@pytest.mark.parametrize(
    "solution, message",
    [
        ('[{"label": "a", "bbox": [0, 0, 0, 5]}]', "no area"),
        ('[{"label": "a", "bbox": [0, 0, NaN, 5]}]', "non-finite"),
        ('[{"label": 3, "bbox": [0, 0, 1, 5]}]', "label must be a string"),
        ('[{"label": "a", "bbox": [0, 0, 1]}]', "4 numbers"),
        ('{"label": "a"}', "must be a list"),
    ],
)
def test_invalid_solutions_name_the_target(solution, message):
    with pytest.raises(ValueError, match=message):
        parse_solution(solution, "sol")


def test_prompts_follow_vlmr1():
    rec = get_template("vlmr1").question("rec", "the man on the left")
    assert rec.startswith(
        "Please provide the bounding box coordinate of the region this sentence describes: the man on the left."
    )
    assert rec.endswith("Output the final answer in JSON format.")
    ovd = get_template("vlmr1").question("ovd", ovd_phrases(["cat", "rider's helmet"]))
    # VLM-R1's released OVD line (issue #246): the phrase list is a Python list's repr
    assert "detect the following objects: ['cat', \"rider's helmet\"]. Output the bbox coordinates" in ovd
    assert '\n```json\n[{"bbox_2d": [x1, y1, x2, y2], "label": "object name"}]\n```\n.' in ovd
    assert ovd.endswith('If no targets are detected in the image, simply respond with "None".')
    msgs = build_messages("rec", "a dog")
    assert (
        msgs[0]["role"] == "user"
        and msgs[0]["content"][0] == {"type": "image"}
        and msgs[0]["content"][1]["type"] == "text"
    )
    with pytest.raises(ValueError, match="unknown task"):
        get_template("vlmr1").question("vqa", "x")
    with pytest.raises(ValueError, match="unknown prompt template"):
        get_template("nope")


def test_the_sql_rendering_of_the_sample_id_rule_gives_the_same_ids():
    import duckdb

    con = duckdb.connect()
    sql = "SELECT " + sample_id_sql("?", "k") + " FROM (SELECT unnest([1, 42, 581857]) AS k)"
    got = [r[0] for r in con.execute(sql, ["coco", "train2017"]).fetchall()]
    assert got == [make_sample_id("coco", ("train2017", k)) for k in (1, 42, 581857)]
