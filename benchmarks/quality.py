"""All built-in quality rules over a synthetic catalog of 1,000,000 samples on 300,000 images, and near-duplicate
scaling.

The catalog is generated in DuckDB SQL (COCO-like images and annotations,
one OVD sample per image, REC samples on annotations, image probes with
planted exact and near duplicates). One recipe holds every built-in rule.
Printed: seconds per feature group and per rule, the total, and the
near-duplicate search at 100k / 300k / 1M images (rows emitted grow
linearly; seconds per image should stay flat). Target: <= 10 s total.

    .venv/bin/python benchmarks/quality.py [--samples 1000000 --images 300000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from curation import catalog
from curation.quality import features
from curation.quality.apply import evaluate_recipe
from curation.quality.recipe import Recipe, RuleSpec
from curation.quality.rules import BUILTIN


def build(db: Path, n_samples: int, n_images: int, seed: float = 0.42) -> None:
    n_rec = n_samples - n_images
    with catalog.connect(db) as con:
        con.execute(f"SELECT setseed({seed})")
        con.execute(f"""INSERT INTO images SELECT 'f', 'coco', i, 'train2017/' || lpad(i::VARCHAR, 12, '0') || '.jpg',
            CASE WHEN i % 3 = 0 THEN 480 ELSE 640 END, CASE WHEN i % 3 = 0 THEN 640 ELSE 480 END FROM
            range({n_images}) t(i)""")
        con.execute(f"""INSERT INTO annotations
            SELECT 'f', 'coco', a, a // 3, c, 'category ' || c, x, y, x + w, y + h, w * h, random() < 0.01
            FROM (SELECT a, (random() * 80)::INT AS c, random() * 400 AS x, random() * 300 AS y,
                0.5 + random() * 200 AS w,
                         0.5 + random() * 150 AS h FROM range({n_images * 3}) t(a))""")
        con.execute("""INSERT INTO samples (sample_id, file_id, source, split, task, image_key, width, height, problem,
            solution, image_id,
                category_ids, image_path)
            SELECT md5('ovd' || i.image_id)[:24], 'f', 'coco', 'train2017', 'ovd', i.image_key, i.width, i.height,
                string_agg('''' || a.category || '''', ', '), to_json(list({'label': a.category, 'bbox': [a.x1, a.y1,
                a.x2, a.y2]}))::VARCHAR,
                i.image_id, list(DISTINCT a.category_id), '/data/' || i.image_key
            FROM images i JOIN annotations a USING (image_id) GROUP BY ALL""")
        words = (
            "['the', 'man', 'left', 'red', 'car', 'dog', 'small', 'behind', 'white', 'shirt', 'café', 'near', 'table']"
        )
        splits = "['unc/train', 'unc/train', 'unc/train', 'unc/val', 'unc/testA']"
        con.execute(f"""INSERT INTO samples (sample_id, file_id, source, split, task, image_key, width, height,
            problem,
            solution, image_id,
                ann_id, ref_id, sent_id, category_ids, image_path)
            SELECT md5('rec' || r)[:24], 'f', 'refcoco', {splits}[1 + (a.image_id % 5)], 'rec', i.image_key, i.width,
            i.height, p,
                to_json([{{'label': p, 'bbox': [a.x1, a.y1, a.x2, a.y2]}}])::VARCHAR, a.image_id, a.ann_id, r, r,
                [a.category_id], '/data/' || i.image_key
            FROM (SELECT r, (random() * {n_images * 3 - 1})::BIGINT AS ann_id,
                         array_to_string(list_transform(range(1 + (random() * 8)::INT), lambda k: {words}[1 + (random()
                         * 12)::INT]), ' ') AS p
                  FROM range({n_rec}) t(r))
            JOIN annotations a USING (ann_id) JOIN images i ON i.image_id = a.image_id""")
        con.execute("""INSERT INTO image_probes (path, size_bytes, mtime_ns, width, height, format, sha256, phash,
            error,
            verified,
            max_pixels)
            SELECT '/data/' || image_key, 100000, 0, width, height, 'JPEG',
                CASE WHEN image_id % 1000 = 1 THEN md5((image_id - 1)::VARCHAR) ELSE md5(image_id::VARCHAR) END,
                CASE WHEN image_id % 500 = 7 THEN xor(hash(image_id - 1), 5::UBIGINT) ELSE hash(image_id) END,
                CASE WHEN image_id % 5000 = 3 THEN 'image unreadable: synthetic' END, false, 89478485
            FROM images""")


def near_dup_scaling(sizes: list[int], distance: int) -> list[tuple[int, float, int]]:
    out = []
    for n in sizes:
        con = duckdb.connect()
        con.execute(f"CREATE TEMP TABLE probes AS SELECT 'p' || i AS path, hash(i) AS phash FROM range({n}) t(i)")
        con.execute(
            f"INSERT INTO probes SELECT 'q' || i, xor(hash(i), 3::UBIGINT) FROM range(0, {n}, 100) t(i)"
        )  # 1% planted near dups
        t0 = time.perf_counter()
        features.near_duplicates(con, "probes", distance)
        seconds = time.perf_counter() - t0
        found = con.execute("SELECT count(*) FROM _near_dup").fetchone()[0]
        out.append((n, seconds, found))
        con.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--images", type=int, default=300_000)
    ap.add_argument("--scaling", type=int, nargs="*", default=[100_000, 300_000, 1_000_000])
    args = ap.parse_args()
    console = Console()
    recipe = Recipe(name="all-builtin", rules=[RuleSpec(rule=name) for name in BUILTIN])
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        t0 = time.perf_counter()
        build(db, args.samples, args.images)
        console.print(f"built a synthetic catalog in {time.perf_counter() - t0:.1f} s: {catalog.counts(db)}")
        t0 = time.perf_counter()
        r = evaluate_recipe(db, recipe)
        total = time.perf_counter() - t0
    table = Table(
        "step",
        "seconds",
        "flagged",
        title=f"all {len(BUILTIN)} built-in rules, {r.total:,} samples, {args.images:,} images",
    )
    for name, s in r.seconds_features.items():
        table.add_row(f"features: {name}", f"{s:.2f}", "")
    flagged = {f.rule: f.flagged for f in r.funnel}
    for name, s in r.seconds_rules.items():
        table.add_row(f"rule: {name}", f"{s:.3f}", f"{flagged[name]:,}")
    table.add_row("total (evaluate: check, features, rules, store flags, funnel)", f"{total:.2f}", f"kept {r.kept:,}")
    console.print(table)
    scale = Table(
        "images",
        "near-dup seconds",
        "us per image",
        "pairs found",
        "vs smallest",
        title="near-duplicate search scaling (pHash <= 4 bits)",
    )
    rows = near_dup_scaling(args.scaling, 4)
    base = rows[0][1] / rows[0][0]
    for n, s, found in rows:
        scale.add_row(f"{n:,}", f"{s:.2f}", f"{s / n * 1e6:.2f}", f"{found:,}", f"{(s / n) / base:.2f}x per image")
    console.print(scale)


if __name__ == "__main__":
    main()
