"""The demo's inputs: fixtures of all four formats, a tiny warm-started Qwen2.5-VL and a 2-step training config.

What ``make demo`` and the demo deployments run on; written once under ``out`` and reused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from curation.demo.fixtures import make_coco, make_d3, make_refcoco, make_vlmr1_jsonl
from curation.demo.tiny_model import build_tiny_vlm


@dataclass(frozen=True)
class DemoInputs:
    """Where the demo's inputs are: sources as (kind, annotation file, image root)."""

    root: Path
    model: Path
    train_config: Path
    sources: list[tuple[str, Path, Path]]


def write_train_config(path: Path, model: Path, max_steps: int = 2) -> Path:
    """A CPU GRPO config that learns visibly in ``max_steps`` steps (4 generations, batch 8, ZeRO-2)."""
    train = {
        "model": str(model),
        "num_generations": 4,
        "per_device_train_batch_size": 8,
        "max_completion_length": 40,
        "learning_rate": 0.002,
        "beta": 0.0,
        "max_steps": max_steps,
        "save_steps": 1,
        "seed": 3,
        "deepspeed": "zero2",
        "use_cpu": True,
    }
    path.write_text(yaml.safe_dump(train))
    return path


def write_demo_inputs(out: Path, say: Callable[[str], None] | None = None) -> DemoInputs:
    """Fixtures, model and training config under ``out`` (written once, then reused); ``say`` hears a line per
    piece built, with its time (the model's warm start is most of it: a minute on busy cores)."""
    say = say or (lambda line: None)
    out = Path(out).resolve()
    data = out / "data"
    if not (data / "ready").exists():
        for kind, make, folder in (("COCO", make_coco, "coco"), ("RefCOCO", make_refcoco, "refer"),
                                   ("D3", make_d3, "d3"), ("VLM-R1 jsonl", make_vlmr1_jsonl, "vlmr1")):  # fmt: skip
            t0 = time.monotonic()
            make(data / folder)
            say(f"demo inputs: {kind} fixture written to {data / folder} ({time.monotonic() - t0:.1f} s)")
        (data / "ready").write_text("fixtures written")
    model = out / "tiny-qwen2_5_vl"
    if not (model / "config.json").exists():
        say("demo inputs: building a tiny Qwen2.5-VL and teaching it the answer formats (120 steps) ...")
        t0 = time.monotonic()
        build_tiny_vlm(model, "qwen2_5_vl", warm_start_steps=120)
        say(f"demo inputs: tiny Qwen2.5-VL ready in {model} ({time.monotonic() - t0:.1f} s)")
    sources = [
        ("coco", data / "coco" / "annotations" / "instances_train2017.json", data / "coco"),
        ("refcoco", data / "refer" / "refcoco" / "refs(unc).p", data / "refer" / "train2014"),
        ("d3", data / "d3" / "d3_json" / "d3_full_annotations.json", data / "d3" / "d3_images"),
        ("jsonl", data / "vlmr1" / "vlmr1_rec_ovd.jsonl", data / "vlmr1" / "images"),
    ]
    return DemoInputs(out, model, write_train_config(out / "train.yaml", model), sources)
