"""``make demo``: what exists of the pipeline, end to end, on an embedded default.

Today that is the VLM-R1 core: canonical samples written as parquet, their
prompts, and the rewards scoring answers given in three box frames. It grows
with each stage of the pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from vlmr1.boxes import BoxFrame
from vlmr1.prompts import build_messages, ovd_phrases
from vlmr1.records import Sample, Target, make_sample_id, to_table
from vlmr1.rewards import RewardBatch, score

FRAMES = {
    "abs_original": BoxFrame("abs_original"),
    "abs_resized (Qwen2.5-VL)": BoxFrame("abs_resized", max_pixels=1280 * 28 * 28),
    "norm1000 (Qwen2-VL/3-VL)": BoxFrame("norm1000"),
}


def demo_samples() -> list[Sample]:
    def rec(key, w, h, expr, box):
        return Sample(make_sample_id("demo", key), "demo", "train", "rec", f"{key}.jpg", w, h, expr, (Target(expr, box),))

    return [
        rec("img1", 640, 480, "the man in a red jacket on the left", (32.5, 60.0, 210.0, 470.0)),
        rec("img2", 1920, 1080, "small dog next to the bench", (1400.0, 700.0, 1610.0, 905.0)),
        Sample(make_sample_id("demo", "img3"), "demo", "train", "ovd", "img3.jpg", 800, 600, ovd_phrases(["cat", "sofa", "lamp"]),
               (Target("cat", (100.0, 200.0, 300.0, 380.0)), Target("sofa", (20.0, 150.0, 780.0, 590.0)))),
    ]


def _answer(sample: Sample, frame: BoxFrame, jitter: float) -> str:
    boxes = np.array([t.bbox for t in sample.solution]) + jitter
    in_frame = frame.from_original(boxes, sample.width, sample.height).round(0)
    if sample.task == "rec":
        body = json.dumps({"bbox_2d": in_frame[0].tolist(), "label": sample.problem})
    else:
        body = "```json\n" + json.dumps([{"bbox_2d": b.tolist(), "label": t.label} for b, t in zip(in_frame, sample.solution)]) + "\n```"
    return f"<think>I look for the described objects.</think> <answer>{body}</answer>"


def run_demo(out: Path) -> None:
    console = Console()
    out.mkdir(parents=True, exist_ok=True)
    samples = demo_samples()
    pq.write_table(to_table(samples), out / "samples.parquet")
    console.print(f"[bold]1.[/] wrote {len(samples)} canonical samples to {out / 'samples.parquet'}")
    console.print("[bold]2.[/] the prompt the policy sees for the first sample:")
    console.print(build_messages(samples[0].task, samples[0].problem)[0]["content"][1]["text"], style="dim")

    table = Table("sample", "task", "answer frame", "jitter px", "format", "iou / od_length")
    rows_out = []
    for jitter in (0.0, 12.0):
        for frame_name, frame in FRAMES.items():
            completions = [_answer(s, frame, jitter) for s in samples]
            batch = RewardBatch.build(completions, [s.solution for s in samples], [s.width for s in samples],
                                      [s.height for s in samples], [s.task for s in samples], frame)
            fmt, iou, odl = score("format", batch), score("iou", batch), score("od_length", batch)
            for s, c, f, a, b in zip(samples, completions, fmt, iou, odl):
                table.add_row(s.image_key, s.task, frame_name, f"{jitter:g}", f"{f:.0f}", f"{(a if s.task == 'rec' else b):.4f}")
                if frame.kind == "abs_original":
                    rows_out.append({"completion": c, "solution": [t.to_json() for t in s.solution],
                                     "width": s.width, "height": s.height, "task": s.task})
    console.print("[bold]3.[/] the same answers given in three box frames score the same (rounded to whole units in each frame):")
    console.print(table)
    with open(out / "reward_inputs.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows_out)
    console.print(f"[bold]4.[/] reward inputs for the CLI: {out / 'reward_inputs.jsonl'}\n"
                  f"   try: vlmr1 rewards score --reward iou {out / 'reward_inputs.jsonl'}")
    _ingest_fixture(console, out)


def _ingest_fixture(console: Console, out: Path) -> None:
    """Stage 1 of the pipeline: fixtures of all four formats (real JPEGs, planted defects) into the catalog, images probed."""
    from curation.catalog import connect
    from curation.fixtures import make_coco, make_d3, make_refcoco, make_vlmr1_jsonl
    from curation.images import ImageCheck
    from curation.ingest import ingest_coco, ingest_d3, ingest_jsonl, ingest_refcoco

    db = out / "catalog.duckdb"
    db.unlink(missing_ok=True)
    data = out / "data"
    coco = make_coco(data / "coco")
    refs = make_refcoco(data / "refer")
    d3 = make_d3(data / "d3")
    jsonl = make_vlmr1_jsonl(data / "vlmr1")
    runs = [
        ("coco", lambda: ingest_coco(db, coco, images=ImageCheck([data / "coco"]))),
        ("refcoco", lambda: ingest_refcoco(db, refs, images=ImageCheck([data / "refer" / "train2014"]))),
        ("d3", lambda: ingest_d3(db, d3, images=ImageCheck([data / "d3" / "d3_images"]))),
        ("jsonl", lambda: ingest_jsonl(db, jsonl, images=ImageCheck([data / "vlmr1" / "images"]))),
    ]
    summary = Table("format", "samples", "images", "annotations", "rejects", title=f"5. ingested four fixtures into {db}")
    for name, run in runs:
        s = run()
        summary.add_row(name, *(str(s.counts[k]) for k in ("samples", "images", "annotations", "rejects")))
    console.print(summary)
    with connect(db) as con:
        rows = con.execute("SELECT s.kind, r.section, r.record_index, r.record_id, r.reason FROM rejects r JOIN sources s USING (file_id) "
                           "ORDER BY s.kind, r.section, r.record_index").fetchall()
    table = Table("format", "section", "record index", "id", "reason", title="rejects ledger (the fixtures' planted defects)")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)
    _quality(console, db, out)


def _quality(console: Console, db: Path, out: Path) -> None:
    """Stage 2: the default and strict recipes over the catalog, funnel and diff written as reports."""
    from curation.quality.apply import evaluate
    from curation.quality.recipe import load_recipe
    from curation.quality.report import write_report

    for name in ("default", "strict"):
        r = evaluate(db, load_recipe(name))
        md, png = write_report(r, out / "reports" / f"quality-{name}")
        table = Table("rule", "action", "flagged", "unique", "kept after", title=f"6. quality recipe {name} ({r.recipe_hash}): {md}, {png}")
        for f in r.funnel:
            table.add_row(f.rule, f.action, str(f.flagged), str(f.unique), str(f.kept_after))
        console.print(table)
    _score_and_shard(console, db, out)


def _score_and_shard(console: Console, db: Path, out: Path) -> None:
    """Stages 3-4: difficulty with a tiny random-weight Qwen2.5-VL (built offline), then shards and a VLM-R1 export."""
    from curation.difficulty import band_counts, score_recipe
    from curation.exports import to_vlmr1_jsonl
    from curation.quality.recipe import load_recipe
    from curation.selection import select
    from curation.shards import write_shards
    from vlmr1.rollout import Sampling, make_engine
    from vlmr1.tiny import build_tiny_vlm

    model = build_tiny_vlm(out / "tiny-qwen2_5_vl", "qwen2_5_vl")
    recipe = load_recipe("default")
    s = score_recipe(db, recipe, make_engine("hf", str(model), batch_size=8), sampling=Sampling(n=4, max_new_tokens=24))
    table = Table("source", "task", "band", "samples", "suspect", title=f"7. difficulty, scorer {s.scorer_key} (random weights: expect zero_std)")
    for row in band_counts(db, s.scorer_key):
        table.add_row(*(str(v) for v in row))
    console.print(table)
    shards = out / "shards" / "default"
    shards.parent.mkdir(parents=True, exist_ok=True)
    manifest = write_shards(select(db, recipe, s.scorer_key), db, shards)
    pairs = to_vlmr1_jsonl(shards, out / "export")
    console.print(f"[bold]8.[/] shards: {manifest}; VLM-R1 export: --data_file_paths {':'.join(str(p) for p, _ in pairs)} "
                  f"--image_folders {':'.join(f for _, f in pairs)}")
