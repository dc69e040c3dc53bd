"""Selection and shards: deterministic, atomic, checksummed; round trips through datasets/TRL and the VLM-R1 export."""

import json
import os
import subprocess
import sys

import pytest

from curation import catalog
from curation.demo.tiny_model import build_tiny_vlm
from curation.difficulty.config import ScorerConfig
from curation.difficulty.scoring import score_recipe
from curation.exports.vlmr1_jsonl import to_vlmr1_jsonl
from curation.ingest import ingest
from curation.ingest.images import ImageCheck
from curation.quality.apply import evaluate_recipe
from curation.quality.recipe import Recipe, load_recipe
from curation.quality.recipe import Selection as SelectionSpec
from curation.selection.select import equal_size, select
from curation.shards.write import write_shards
from helpers import coco_and_refcoco_catalog, kill_at_marker
from vlmr1.prompts import build_messages
from vlmr1.records import parse_solution
from vlmr1.rollout import Sampling, make_engine
from vlmr1.shards import ShardError, load, load_table


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    db = coco_and_refcoco_catalog(root, 12, 8)
    model = build_tiny_vlm(root / "tiny", "qwen2_5_vl")
    s = score_recipe(
        db,
        load_recipe("none"),
        make_engine("hf", str(model), batch_size=8),
        ScorerConfig(sampling=Sampling(n=2, max_new_tokens=6, seed=1)),
    )
    return {"root": root, "db": db, "model": model, "scorer": s.scorer_key}


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".parquet", ".json")}


def test_same_inputs_give_byte_identical_shards(world, tmp_path):
    sel = select(world["db"], load_recipe("default"), world["scorer"])
    a = write_shards(sel, world["db"], tmp_path / "a").parent
    b = write_shards(select(world["db"], load_recipe("default"), world["scorer"]), world["db"], tmp_path / "b").parent
    assert _files(a) == _files(b) and len(_files(a)) >= 2
    m = json.loads((a / "manifest.json").read_text())
    assert (
        m["scorer_key"] == world["scorer"]
        and m["family"]["frame"] == "abs_resized"
        and m["counts"]["rows"] == len(sel.rows)
    )


def test_equal_size_pools_are_equal_and_deterministic(world, tmp_path):
    recipes = [load_recipe("none"), load_recipe("strict")]
    first = equal_size([select(world["db"], r, world["scorer"]) for r in recipes])
    second = equal_size([select(world["db"], r, world["scorer"]) for r in recipes])
    assert len({len(s.rows) for s in first}) == 1 and len(first[0].rows) > 0
    for x, y, name in zip(first, second, ("none", "strict")):
        assert [r["sample_id"] for r in x.rows] == [r["sample_id"] for r in y.rows]
        assert _files(write_shards(x, world["db"], tmp_path / f"x-{name}").parent) == _files(
            write_shards(y, world["db"], tmp_path / f"y-{name}").parent
        )


def test_selection_caps_balance_pool_and_curriculum(world):
    base = load_recipe("none")
    spec = SelectionSpec(caps={"coco": 3}, balance_by="source", pool_size=6, curriculum="easy_to_hard", seed=5)
    custom = Recipe(name="sel", rules=base.rules, selection=spec)
    evaluate_recipe(world["db"], custom)
    sel = select(world["db"], custom, world["scorer"])
    sources = [r["source"] for r in sel.rows]
    assert len(sel.rows) == 6 and sources.count("coco") == 3 and sources.count("refcoco") == 3
    rates = [r["pass_rate"] for r in sel.rows]
    assert rates == sorted(rates, reverse=True)
    band = Recipe(
        name="band", rules=[], selection=SelectionSpec(difficulty={"min_pass_rate": 0.5, "max_pass_rate": 1.0})
    )
    evaluate_recipe(world["db"], band)
    assert all(r["pass_rate"] >= 0.5 for r in select(world["db"], band, world["scorer"]).rows)


def test_load_round_trips_prompts_images_and_solutions_through_trl(world, tmp_path):
    from PIL import Image
    from trl.data_utils import maybe_apply_chat_template

    from vlmr1.families import get_family
    from vlmr1.processors import load_processor

    sel = select(world["db"], load_recipe("default"), world["scorer"])
    for embed in (False, True):
        out = tmp_path / f"out-{embed}"
        write_shards(sel, world["db"], out, embed_images=embed)
        ds = load(out)
        assert ds["sample_id"] == [r["sample_id"] for r in sel.rows]
        processor = load_processor(world["model"], get_family("qwen2_5_vl"))
        for row, r in zip(ds, sel.rows):
            assert row["solution"] == r["solution"] and row["task"] == r["task"] and row["pass_rate"] == r["pass_rate"]
            expected = build_messages(r["task"], r["problem"])
            assert [[c["type"] for c in m["content"]] for m in row["prompt"]] == [
                [c["type"] for c in m["content"]] for m in expected
            ]
            assert row["prompt"][0]["content"][1]["text"] == expected[0]["content"][1]["text"]
            with Image.open(r["image_path"]) as original:
                assert (
                    row["image"].size == original.size
                    and row["image"].convert("RGB").tobytes() == original.convert("RGB").tobytes()
                )
            text = maybe_apply_chat_template({"prompt": row["prompt"]}, processor)["prompt"]
            assert "<|image_pad|>" in text and r["problem"].split(",")[0].strip("'") in text
            # the prompt GRPO trains on is, character for character, the one the scorer measured difficulty with
            assert text == processor.apply_chat_template(expected, add_generation_prompt=True, tokenize=False)


def test_tampered_or_truncated_shards_are_refused_with_the_file_named(world, tmp_path):
    sel = select(world["db"], load_recipe("none"), world["scorer"])
    folder = write_shards(sel, world["db"], tmp_path / "t").parent
    shard = next(folder.glob("shard-*.parquet"))
    data = bytearray(shard.read_bytes())
    real = shard.resolve()
    os.chmod(real, 0o644)
    data[len(data) // 2] ^= 0xFF
    real.write_bytes(bytes(data))
    with pytest.raises(ShardError, match=rf"{shard.name}: sha256 differs"):
        load(folder)
    real.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ShardError, match=rf"{shard.name}: \d+ bytes, the manifest says"):
        load_table(folder)


CHILD = """
import sys, time
from pathlib import Path
import curation.shards.write as shards
from curation.quality.recipe import load_recipe
from curation.selection.select import select
real = shards._report
def paused(*args):
    real(*args)
    Path(sys.argv[3]).write_text("shards written, manifest not yet")
    time.sleep(120)
shards._report = paused
shards.write_shards(select(sys.argv[1], load_recipe("strict"), None), sys.argv[1], Path(sys.argv[2]))
"""


def test_kill_during_write_leaves_the_previous_output_and_no_manifest(world, tmp_path):
    out = tmp_path / "atomic"
    first = write_shards(select(world["db"], load_recipe("none"), None), world["db"], out)
    before = _files(out)
    marker = tmp_path / "marker"
    kill_at_marker(CHILD, [world["db"], out, marker], marker, 120, "the manifest")
    assert _files(out) == before and len(load(out)) == json.loads(first.read_text())["counts"]["rows"]
    torn = [p for p in (tmp_path / ".atomic.versions").glob(".tmp-*")]
    assert torn and not any((p / "manifest.json").exists() for p in torn)  # the half-written set never looks complete
    write_shards(select(world["db"], load_recipe("strict"), None), world["db"], out)
    assert not list((tmp_path / ".atomic.versions").glob(".tmp-*"))  # a later write clears what the killed one left


def test_vlmr1_export_parses_back_to_the_same_samples(world, tmp_path):
    sel = select(world["db"], load_recipe("default"), world["scorer"])
    out = write_shards(sel, world["db"], tmp_path / "s").parent
    files = to_vlmr1_jsonl(out, tmp_path / "export")
    db2 = tmp_path / "again.duckdb"
    for f in files:
        ingest("jsonl", db2, f.path, images=ImageCheck([f.image_folder]))
    with catalog.connect(db2) as con:
        back = {
            (r[0], r[1]): r[2:]
            for r in con.execute("SELECT image_key, problem, task, solution, width, height FROM samples").fetchall()
        }
    assert len(back) == len(sel.rows)
    for r in sel.rows:
        task, solution, w, h = back[(r["image_key"], r["problem"])]
        assert task == r["task"] and (w, h) == (r["width"], r["height"])
        got, want = parse_solution(solution), parse_solution(r["solution"])
        assert [t.bbox for t in got] == [t.bbox for t in want]
        if task == "ovd":  # REC labels are the expression on both sides; OVD labels are the categories
            assert [t.label for t in got] == [t.label for t in want]


def test_cli_shard_ablation_and_export(world, tmp_path):
    from pathlib import Path

    vlmr1 = str(Path(sys.executable).parent / "vlmr1")
    env = {**os.environ, "COLUMNS": "250"}
    out = subprocess.run(
        [
            vlmr1,
            "shard",
            "none",
            "strict",
            "--catalog",
            str(world["db"]),
            "--out",
            str(tmp_path / "abl"),
            "--scorer",
            world["scorer"],
            "--equal-size",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    a, b = (json.loads((tmp_path / "abl" / n / "manifest.json").read_text()) for n in ("none", "strict"))
    assert a["counts"]["rows"] == b["counts"]["rows"] > 0 and a["recipe"]["name"] == "none"
    assert (tmp_path / "abl" / "none" / "selection.png").exists() and "equal size" in (
        tmp_path / "abl" / "none" / "selection.md"
    ).read_text()
    out = subprocess.run(
        [vlmr1, "export", str(tmp_path / "abl" / "none"), "--to", "vlmr1-jsonl", "--out", str(tmp_path / "exp")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "train rec with VLM-R1" in out.stdout and (tmp_path / "exp" / "train-rec.sh").exists()
    out = subprocess.run(
        [vlmr1, "shard", "none", "--catalog", str(world["db"]), "--out", str(tmp_path / "x"), "--scorer", "nope"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 2 and "no scorer 'nope'" in out.stderr


def test_shards_are_bounded_by_rows_and_bytes_and_load_in_order(world, tmp_path):
    sel = select(world["db"], load_recipe("none"), world["scorer"])
    m = json.loads(write_shards(sel, world["db"], tmp_path / "r", max_rows=7).read_text())
    assert [s["rows"] for s in m["shards"]] == [7] * (len(sel.rows) // 7) + (
        [len(sel.rows) % 7] if len(sel.rows) % 7 else []
    )
    assert load(tmp_path / "r")["sample_id"] == [r["sample_id"] for r in sel.rows]
    m = json.loads(write_shards(sel, world["db"], tmp_path / "e", embed_images=True, max_bytes=4000).read_text())
    assert len(m["shards"]) > 1 and sum(s["rows"] for s in m["shards"]) == len(sel.rows)
    assert load(tmp_path / "e")["sample_id"] == [r["sample_id"] for r in sel.rows]
