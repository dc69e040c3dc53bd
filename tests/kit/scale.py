"""A large scored catalog built in SQL, for the selection and shard benchmarks (10 million samples in about a
minute): RefCOCOg-like REC and COCO-like OVD samples, four per image, image probes with hashes, a recipe's quality
flags (2% dropped) and a scorer's difficulty for 95% of the samples. No image files exist: shards store paths.
"""

from __future__ import annotations

from pathlib import Path

from curation import catalog
from curation.quality.recipe import Recipe

SCORER = "synthetic-scorer"

_SAMPLES = """
INSERT INTO samples (sample_id, file_id, source, split, task, image_key, width, height, problem, problem_raw,
    solution, image_id, ann_id, ref_id, sent_id, category_ids, source_sha256, eval_only, image_path)
WITH g AS (
    SELECT i, i % 3 <> 0 AS rec, hash(i) AS h, i // 4 AS img FROM range(?) t(i)
), v AS (
    SELECT *, ['person', 'car', 'dog', 'cat', 'chair', 'bottle', 'cup', 'bird'][(1 + h % 8)::BIGINT] AS cat,
        ['red', 'blue', 'green', 'white', 'black'][(1 + (h >> 8) % 5)::BIGINT] AS colour,
        ['left', 'right', 'middle', 'back', 'front'][(1 + (h >> 16) % 5)::BIGINT] AS side,
        round((h >> 20) % 300, 2) AS x, round((h >> 30) % 200, 2) AS y
    FROM g
)
SELECT lpad(lower(hex(i)), 24, '0'), CASE WHEN rec THEN 'f-refcocog' ELSE 'f-coco' END,
    CASE WHEN rec THEN 'refcocog' ELSE 'coco' END, CASE WHEN rec THEN 'umd/train' ELSE 'train2017' END,
    CASE WHEN rec THEN 'rec' ELSE 'ovd' END,
    'train2014/COCO_train2014_' || lpad(img::VARCHAR, 12, '0') || '.jpg', 640, 480,
    CASE WHEN rec THEN 'the ' || colour || ' ' || cat || ' on the ' || side || ' #' || (i % 9973)
         ELSE '''person'', ''' || cat || ''', ''dog''' END,
    NULL,
    '[{"label":"' || CASE WHEN rec THEN 'the ' || colour || ' ' || cat ELSE cat END || '","bbox":[' || x || ','
        || y || ',' || (x + 10 + (h >> 40) % 300) || ',' || (y + 10 + (h >> 50) % 200) || ']}]',
    img, i, i, i, [1], CASE WHEN rec THEN 'f-refcocog' ELSE 'f-coco' END, false,
    ? || '/train2014/COCO_train2014_' || lpad(img::VARCHAR, 12, '0') || '.jpg'
FROM v
"""

_PROBES = """
INSERT INTO image_probes (path, size_bytes, mtime_ns, width, height, format, sha256, phash, error, verified,
    max_pixels)
SELECT DISTINCT image_path, 50000, 0, 640, 480, 'JPEG', sha256(image_path), hash(image_path), NULL, true, 0
FROM samples
"""

_DIFFICULTY = """
INSERT INTO difficulty
SELECT ?, sample_id, 8, n, n / 8, n / 8, (n > 0)::DOUBLE, n / 8, CASE WHEN n IN (0, 8) THEN 0 ELSE 0.3 END, 1.0,
    CASE WHEN n = 0 THEN 'all_fail' WHEN n = 8 THEN 'all_pass' ELSE 'mixed' END, false
FROM (SELECT sample_id, hash(sample_id) % 9 AS n FROM samples WHERE hash(sample_id) % 20 <> 0)
"""


def build(path: str | Path, n: int, recipe: Recipe, image_root: str = "/data/coco") -> Path:
    """A catalog of ``n`` samples at ``path`` with ``recipe`` evaluated (flags current) and scored by ``SCORER``."""
    path = Path(path)
    with catalog.connect(path) as con, catalog.transaction(con):
        for source in ("coco", "refcocog"):
            con.execute(
                "INSERT INTO sources (file_id, kind, source, path, size_bytes, n_records, n_samples, n_rejects) "
                "VALUES (?, ?, ?, ?, 0, 0, 0, 0)",
                [f"f-{source}", "coco" if source == "coco" else "refcoco", source, f"/data/{source}.json"],
            )
        con.execute(_SAMPLES, [n, image_root])
        con.execute(_PROBES)
        con.execute(
            "INSERT INTO quality_flags SELECT sample_id, 'planted', ?, 'drop' FROM samples "
            "WHERE hash(sample_id) % 50 = 0",
            [recipe.hash],
        )
        con.execute(
            "INSERT INTO recipes (recipe_hash, name, content, sources_sha256) VALUES (?, ?, ?, ?)",
            [recipe.hash, recipe.name, "{}", catalog.sources_sha256(con)],
        )
        con.execute("INSERT INTO scorers (scorer_key, spec) VALUES (?, '{}')", [SCORER])
        con.execute(_DIFFICULTY, [SCORER])
    return path
