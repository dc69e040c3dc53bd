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
from rich.table import Column, Table

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
        return Sample(
            make_sample_id("demo", key), "demo", "train", "rec", f"{key}.jpg", w, h, expr, (Target(expr, box),)
        )

    return [
        rec("img1", 640, 480, "the man in a red jacket on the left", (32.5, 60.0, 210.0, 470.0)),
        rec("img2", 1920, 1080, "small dog next to the bench", (1400.0, 700.0, 1610.0, 905.0)),
        Sample(
            make_sample_id("demo", "img3"),
            "demo",
            "train",
            "ovd",
            "img3.jpg",
            800,
            600,
            ovd_phrases(["cat", "sofa", "lamp"]),
            (Target("cat", (100.0, 200.0, 300.0, 380.0)), Target("sofa", (20.0, 150.0, 780.0, 590.0))),
        ),
    ]


def _answer(sample: Sample, frame: BoxFrame, jitter: float) -> str:
    boxes = np.array([t.bbox for t in sample.solution]) + jitter
    in_frame = frame.from_original(boxes, sample.width, sample.height).round(0)
    if sample.task == "rec":
        body = json.dumps({"bbox_2d": in_frame[0].tolist(), "label": sample.problem})
    else:
        body = (
            "```json\n"
            + json.dumps([{"bbox_2d": b.tolist(), "label": t.label} for b, t in zip(in_frame, sample.solution)])
            + "\n```"
        )
    return f"<think>I look for the described objects.</think> <answer>{body}</answer>"


def run_demo(out: Path, flow: bool = True) -> None:
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
            batch = RewardBatch.build(
                completions,
                [s.solution for s in samples],
                [s.width for s in samples],
                [s.height for s in samples],
                [s.task for s in samples],
                frame,
            )
            fmt, iou, odl = score("format", batch), score("iou", batch), score("od_length", batch)
            for s, c, f, a, b in zip(samples, completions, fmt, iou, odl):
                table.add_row(
                    s.image_key, s.task, frame_name, f"{jitter:g}", f"{f:.0f}", f"{(a if s.task == 'rec' else b):.4f}"
                )
                if frame.kind == "abs_original":
                    rows_out.append(
                        {
                            "completion": c,
                            "solution": [t.to_json() for t in s.solution],
                            "width": s.width,
                            "height": s.height,
                            "task": s.task,
                        }
                    )
    console.print(
        "[bold]3.[/] the same answers given in three box frames score the same (rounded to whole units in each frame):"
    )
    console.print(table)
    with open(out / "reward_inputs.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows_out)
    console.print(
        f"[bold]4.[/] reward inputs for the CLI: {out / 'reward_inputs.jsonl'}\n"
        f"   try: vlmr1 rewards score --reward iou {out / 'reward_inputs.jsonl'}\n"
        "   (REC rows get their IoU; OVD rows print null: iou is not their reward, od_length is)"
    )
    if flow:
        _pipeline(console, out)


MEANING = (
    "What the numbers mean: the model is a tiny random-weight Qwen2.5-VL, warm-started for 120 steps and trained "
    "for 2 GRPO steps, so pass rates, rewards and evaluation metrics near 0 are expected. The demo shows every stage "
    "running on real files and what each writes; `vlmr1 catalog` shows the catalog. For training that learns, see "
    "the ablation testbed in the README."
)


def isolated_prefect(out: Path) -> Path:
    """The demo's own Prefect home and ephemeral server under ``out`` (never ``~/.prefect`` or a server the
    shell points at), analytics and telemetry off. Call before Prefect is imported."""
    import os

    home = (out / ".prefect").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.update(
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS="false",
        PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY="false",
        DO_NOT_TRACK="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",  # weight-loading bars between the stage lines
    )
    # Prefect gives its temporary server 20 s to answer; a loaded 2-core machine took longer (seen under the tests)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    return home


def _pipeline(console: Console, out: Path) -> None:
    """Stages 5-9: the curate-and-train flow itself (embedded default: fixtures + tiny offline model), as a deployment
    would run it."""
    import time

    from curation.demo.inputs import write_demo_inputs

    t0 = time.monotonic()
    if not (out / "flow" / "tiny-qwen2_5_vl" / "config.json").exists():
        console.print("[bold]5.[/] building the fixtures and a tiny Qwen2.5-VL (once per folder):")
        write_demo_inputs(out / "flow", lambda line: console.print(f"   {line}"))
        console.print(f"[bold]5.[/] fixtures and tiny model built in {time.monotonic() - t0:.0f} s")
    console.print("[bold]6.[/] curate-and-train (a Prefect flow on a temporary local server; one line per stage):")
    from flows.curate import curate_and_train

    result = curate_and_train(demo=True, demo_output=str(out / "flow"))
    _summary(console, out / "flow", result)
    console.print(f"[bold]done[/] in {time.monotonic() - t0:.0f} s (fixtures, model and flow). {MEANING}")


def _summary(console: Console, out: Path, result: dict) -> None:
    """The stages, the rejects ledger, and every report the run wrote."""
    from curation.catalog import connect

    if result.get("no_new_data"):
        console.print(
            "[bold]7.[/] no new data since the last run: nothing was ingested, scored or trained (delete "
            f"{out} to start over); below, the last run's rejects and reports"
        )
    stages = Table("stage", "seconds", "what", title="7. the stages", title_justify="left")
    files = {r["what"] for r in result.get("reports", [])}  # listed in their own table below, not as facts
    for s in [] if result.get("no_new_data") else result["stages"]:
        facts = {k: Path(v).name if str(v).startswith("/") else v for k, v in s.items()
                 if k not in ("stage", "seconds", "title", *files)}  # fmt: skip
        stages.add_row(s["stage"], str(s.get("seconds", "")), ", ".join(f"{k}={v}" for k, v in facts.items()))
    if stages.row_count:
        console.print(stages)
    with connect(out / "catalog.duckdb") as con:
        rows = con.execute(
            "SELECT s.kind, s.path, r.section, r.record_index, r.record_id, r.reason FROM rejects r JOIN sources s "
            "USING (file_id) ORDER BY s.kind, r.section, r.record_index"
        ).fetchall()
    title = "8. rejects (the fixtures' planted defects): one row per bad record, naming file and record"
    ledger = Table("format", "file", "section", "record index", "id", "reason", title=title, title_justify="left")
    for kind, path, *rest in rows:
        ledger.add_row(kind, Path(path).name, *(str(v) for v in rest))
    console.print(ledger)
    written = Table("stage", "what", Column("file", overflow="fold"), title="9. every report and output of the run",
                    title_justify="left")  # fmt: skip
    for r in result.get("reports", []):
        written.add_row(r["stage"], r["what"], r["path"])
    written.add_row("", "catalog", str(out / "catalog.duckdb"))
    console.print(written)
