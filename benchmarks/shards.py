"""Write 1,000,000 selected rows as shards (image paths, not bytes) and load them back: rows/s for both, side by side.

The rows are synthetic but shaped like a real selection (REC and OVD
problems, solutions, difficulty summary, lineage); the catalog is a small
real one (the manifest records its snapshot). Loading includes the sha256
check of every shard and building the ``datasets.Dataset``.

    .venv/bin/python benchmarks/shards.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from curation import catalog
from curation.quality.recipe import load_recipe
from curation.selection import Selection
from curation.shards import write_shards
from vlmr1.shards import load


def rows(n: int, root: str) -> list[dict]:
    rng = random.Random(0)
    cats = ["person", "car", "dog", "cat", "chair", "bottle", "cup", "bird"]
    out = []
    for i in range(n):
        w, h = rng.choice([(640, 480), (480, 640), (640, 427)])
        rec = i % 3 != 0
        x, y = rng.uniform(0, 300), rng.uniform(0, 200)
        box = [round(x, 2), round(y, 2), round(x + rng.uniform(10, 300), 2), round(y + rng.uniform(10, 200), 2)]
        problem = "the man on the left in a red shirt" if rec else "'person', 'car', 'dog'"
        solution = json.dumps([{"label": problem if rec else rng.choice(cats), "bbox": box}], separators=(",", ":"))
        out.append(
            {
                "sample_id": f"{i:024x}",
                "task": "rec" if rec else "ovd",
                "problem": problem,
                "solution": solution,
                "width": w,
                "height": h,
                "source": "refcocog" if rec else "coco",
                "split": "umd/train" if rec else "train2017",
                "pass_rate": rng.random(),
                "reward_std": rng.random() / 3,
                "band": "mixed",
                "n_pass": 4,
                "k": 8,
                "image_id": i // 4,
                "ann_id": i,
                "ref_id": i,
                "sent_id": i,
                "source_sha256": "0" * 64,
                "image_key": f"train2014/COCO_train2014_{i // 4:012d}.jpg",
                "image_path": f"{root}/train2014/COCO_train2014_{i // 4:012d}.jpg",
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db = tmp / "c.duckdb"
        with catalog.connect(db):
            pass
        data = rows(args.rows, str(tmp / "images"))
        sel = Selection(load_recipe("none"), None, data, [("synthetic", len(data))])
        t0 = time.perf_counter()
        manifest = write_shards(sel, db, tmp / "out")
        write_s = time.perf_counter() - t0
        m = json.loads(manifest.read_text())
        t0 = time.perf_counter()
        ds = load(tmp / "out")
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        first = ds.select_columns(["sample_id", "prompt", "solution"])[:1000]
        access_s = time.perf_counter() - t0
        assert len(ds) == args.rows and first["sample_id"][0] == data[0]["sample_id"]
    size = sum(s["bytes"] for s in m["shards"])
    table = Table(
        "step",
        "rows",
        "seconds",
        "rows/s",
        title=f"{args.rows:,} rows, {len(m['shards'])} shards, {size / 1e6:.0f} MB (paths, not bytes)",
    )
    table.add_row(
        "write (prompts, parquet, fsync, sha256, manifest, report)",
        f"{args.rows:,}",
        f"{write_s:.2f}",
        f"{args.rows / write_s:,.0f}",
    )
    table.add_row(
        "load (verify sha256, read, datasets.Dataset, Image feature)",
        f"{args.rows:,}",
        f"{load_s:.2f}",
        f"{args.rows / load_s:,.0f}",
    )
    table.add_row(
        "first 1,000 rows as Python (prompt, solution)", "1,000", f"{access_s:.3f}", f"{1000 / access_s:,.0f}"
    )
    table.add_row("load vs write", "", f"{load_s / write_s:.2f}x", "")
    console.print(table)


if __name__ == "__main__":
    main()
