"""``sample_features``: one row per sample with everything the quality rules look at.

Computed in DuckDB SQL, in a few passes over ``samples`` (boxes and text in
one, then joins for crowd/distractors, probes, duplicates and leakage).
Rules are predicates over these columns (``curation.quality.rules``); a NULL
feature means "does not apply" (e.g. ``expr_tokens`` of an OVD sample) and
a rule on it does not fire.

Columns:
  n_boxes, min_box_w, min_box_h, oob_px (largest overhang past the image
  edge), min_area_frac, max_area_frac, max_aspect; has_crowd; expr_tokens,
  non_ascii, empty_text, non_unique_ref, distractors; probed, probe_error,
  size_mismatch, exact_dup, near_dup_distance; is_eval, leaks_eval;
  training signal from the merged runs (``curation.feedback.runs``): train_visits
  (0 when never trained on), train_reward_mean, train_reward_max,
  train_reward_last, train_reward_recent (mean of the last 3 visits),
  train_reward_trend (last minus first); difficulty: pass_rates (a map by
  scorer key: ``pass_rates['<key>'] >= 0.9``) and last_pass_rate (under the
  newest scorer that scored the sample). Flags are current for the catalog
  state they were computed on: a merged run makes them stale
  (``catalog.sources_sha256``); a new scoring does not, so rules on
  difficulty see the scores that existed when ``vlmr1 quality`` ran.
"""

from __future__ import annotations

import math
import time
from math import comb

import duckdb

from curation import catalog

# COCO file names carry the COCO image id: COCO_train2014_000000581857.jpg, 000000581857.jpg
COCO_NAME = r"(?:^|/)(?:COCO_[a-z]+20(?:14|17)_)?(\d{12})\.jpg$"
DEFAULT_EVAL_SPLITS = ("*/val", "*/test", "*/testA", "*/testB", "val*", "test*", "minival*", "all")


def eval_predicate(alias: str, eval_splits) -> str:
    """SQL: the row (``alias`` of samples or sample_features) is an evaluation sample: eval-only, or its split matches
    a glob."""
    globs = [f"{alias}.split GLOB '{p.replace(chr(39), chr(39) * 2)}'" for p in eval_splits]
    return "(" + " OR ".join([f"{alias}.eval_only"] + globs) + ")"


_BOXES_AND_TEXT = """CREATE OR REPLACE TEMP TABLE sample_features AS
        WITH parsed AS (
            SELECT s.*, list_transform(from_json(s.solution, '[{{"bbox": "DOUBLE[]"}}]'), lambda t: t.bbox) AS b
            FROM samples s {where}
        ), dims AS (
            SELECT *, list_transform(b, lambda x: x[3] - x[1]) AS bw, list_transform(b, lambda x: x[4] - x[2]) AS bh
            FROM parsed
        )
        SELECT sample_id, file_id, source, split, task, eval_only, image_key, image_path, image_id, ann_id, width,
            height, lower(trim(problem)) AS problem_norm, b AS boxes, len(b) AS n_boxes,
            list_min(bw) AS min_box_w, list_min(bh) AS min_box_h,
            greatest(0, list_max(list_transform(b, lambda x: greatest(-x[1], -x[2], x[3] - width, x[4] - height))))
                AS oob_px,
            list_min(list_transform(list_zip(bw, bh), lambda p: p[1] * p[2])) / (width * height) AS min_area_frac,
            list_max(list_transform(list_zip(bw, bh), lambda p: p[1] * p[2])) / (width * height) AS max_area_frac,
            list_max(list_transform(list_zip(bw, bh),
                lambda p: greatest(p[1] / nullif(p[2], 0), p[2] / nullif(p[1], 0)))) AS max_aspect,
            CASE WHEN task = 'rec' THEN len(string_split_regex(trim(problem), '\\s+')) END AS expr_tokens,
            regexp_matches(problem, '[^\\x00-\\x7F]') AS non_ascii,
            trim(problem) = '' AS empty_text,
            regexp_extract(image_key, '{coco_name}', 1) AS coco_name_id
        FROM dims"""

_ANN_FACTS = """CREATE OR REPLACE TEMP TABLE _ann_facts AS
        SELECT f.sample_id,
            bool_or(a.iscrowd AND (f.task = 'ovd' OR a.ann_id = f.ann_id)) AS has_crowd,
            count(*) FILTER (WHERE f.task = 'rec' AND a.ann_id <> f.ann_id AND NOT a.iscrowd
                             AND a.category_id = t.category_id) AS distractors
        FROM sample_features f
        JOIN annotations a ON a.file_id = f.file_id AND a.image_id = f.image_id
        LEFT JOIN annotations t ON f.task = 'rec' AND t.file_id = f.file_id AND t.ann_id = f.ann_id
        GROUP BY f.sample_id"""

_NON_UNIQUE = """CREATE OR REPLACE TEMP TABLE _non_unique AS
        SELECT image_key, problem_norm FROM sample_features WHERE task = 'rec'
        GROUP BY ALL HAVING count(DISTINCT boxes[1]) > 1"""

_PROBES = """CREATE OR REPLACE TEMP TABLE _probe AS
        SELECT p.path, p.error, p.width, p.height, p.sha256, p.phash,
            p.sha256 IS NOT NULL AND p.path <> min(p.path) OVER (PARTITION BY p.sha256) AS exact_dup
        FROM image_probes p WHERE p.path IN (SELECT image_path FROM sample_features)"""

_EVAL_IMAGES = """CREATE OR REPLACE TEMP TABLE _eval_images AS
        SELECT DISTINCT f.coco_name_id AS coco_id, p.sha256
        FROM sample_features f LEFT JOIN _probe p ON p.path = f.image_path
        WHERE {in_eval}"""

# Training signal (curation.feedback.runs): each sample's visits in the merged runs, in (run time, step) order.
_TRAINING = """CREATE OR REPLACE TEMP TABLE _train_stats AS
        WITH v AS (
            SELECT t.sample_id, t.reward_mean,
                row_number() OVER (PARTITION BY t.sample_id ORDER BY r.created_at, r.run_id, t.step) AS i,
                count(*) OVER (PARTITION BY t.sample_id) AS n
            FROM training_rewards t JOIN runs r USING (run_id)
        )
        SELECT sample_id, max(n) AS train_visits, avg(reward_mean) AS train_reward_mean,
            max(reward_mean) AS train_reward_max, arg_max(reward_mean, i) AS train_reward_last,
            avg(reward_mean) FILTER (WHERE i > n - 3) AS train_reward_recent,
            arg_max(reward_mean, i) - arg_min(reward_mean, i) AS train_reward_trend
        FROM v GROUP BY sample_id"""

# Difficulty under every scorer: a map by scorer key, and the pass rate under the newest scorer of the sample.
_PASS_RATES = """CREATE OR REPLACE TEMP TABLE _pass_rates AS
        SELECT d.sample_id, map_from_entries(list((d.scorer_key, d.pass_rate))) AS pass_rates,
            arg_max(d.pass_rate, s.created_at) AS last_pass_rate
        FROM difficulty d JOIN scorers s USING (scorer_key) GROUP BY d.sample_id"""

# Label quality from the rollouts (curation.difficulty.label_quality), under the newest scorer that has it.
_LABELS = """CREATE OR REPLACE TEMP TABLE _labels AS
        SELECT q.sample_id, q.score AS label_score, q.agreement AS label_agreement, q.support AS label_support,
            q.consensus_iou AS label_consensus_iou, q.other_iou AS label_other_iou, q.worst AS label_worst,
            q.score IS NULL AS label_unknown
        FROM label_quality q JOIN scorers s USING (scorer_key)
        QUALIFY row_number() OVER (PARTITION BY q.sample_id ORDER BY s.created_at DESC, q.scorer_key) = 1"""

_ASSEMBLE = """CREATE OR REPLACE TEMP TABLE sample_features AS
        SELECT f.* EXCLUDE (boxes, coco_name_id, file_id),
            coalesce(af.has_crowd, false) AS has_crowd,
            CASE WHEN f.task = 'rec' AND af.sample_id IS NOT NULL THEN af.distractors END AS distractors,
            nu.image_key IS NOT NULL AS non_unique_ref,
            p.path IS NOT NULL AS probed, p.error AS probe_error,
            p.error IS NULL AND (p.width <> f.width OR p.height <> f.height) AS size_mismatch,
            coalesce(p.exact_dup, false) AS exact_dup, nd.distance AS near_dup_distance,
            ({in_eval}) AS is_eval,
            NOT ({in_eval}) AND (
                f.coco_name_id IN (SELECT coco_id FROM _eval_images WHERE coco_id <> '')
                OR p.sha256 IN (SELECT sha256 FROM _eval_images WHERE sha256 IS NOT NULL)) AS leaks_eval,
            coalesce(ts.train_visits, 0) AS train_visits, ts.* EXCLUDE (sample_id, train_visits),
            pr.pass_rates, pr.last_pass_rate, lq.* EXCLUDE (sample_id)
        FROM sample_features f
        LEFT JOIN _ann_facts af USING (sample_id)
        LEFT JOIN _non_unique nu ON nu.image_key = f.image_key AND nu.problem_norm = f.problem_norm AND f.task = 'rec'
        LEFT JOIN _probe p ON p.path = f.image_path
        LEFT JOIN _near_dup nd ON nd.path = f.image_path
        LEFT JOIN _train_stats ts ON ts.sample_id = f.sample_id
        LEFT JOIN _pass_rates pr ON pr.sample_id = f.sample_id
        LEFT JOIN _labels lq ON lq.sample_id = f.sample_id"""


def compute(
    con: duckdb.DuckDBPyConnection,
    *,
    eval_splits: tuple[str, ...] = DEFAULT_EVAL_SPLITS,
    near_dup_max: int = 4,
    timings: dict | None = None,
    empty: bool = False,
) -> None:
    """(Re)build the temp table ``sample_features``; ``timings`` gets seconds per feature group.

    ``empty=True`` builds it with no rows (instantly): rules are checked
    against its columns before any real work.
    """
    timings = {} if timings is None else timings
    in_eval = eval_predicate("f", eval_splits)
    steps = [
        ("boxes + text", _BOXES_AND_TEXT.format(where="WHERE false" if empty else "", coco_name=COCO_NAME)),
        ("crowd + distractors + non-unique", _ANN_FACTS),
        ("crowd + distractors + non-unique", _NON_UNIQUE),
        ("image probes + duplicates", _PROBES),
        ("near duplicates", lambda: near_duplicates(con, "_probe", near_dup_max)),
        ("leakage", _EVAL_IMAGES.format(in_eval=in_eval)),
        ("training signal + difficulty", _TRAINING),
        ("training signal + difficulty", _PASS_RATES),
        ("label quality", _LABELS),
        ("assemble", _ASSEMBLE.format(in_eval=in_eval)),
    ]
    scratch = ("_ann_facts", "_non_unique", "_probe", "_eval_images", "_near_dup", "_train_stats", "_pass_rates",
               "_labels")  # fmt: skip
    with catalog.temp_tables(con, *scratch):
        for name, step in steps:
            t0 = time.perf_counter()
            step() if callable(step) else con.execute(step)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0


def band_plan(n: int, max_distance: int) -> tuple[int, int]:
    """(bands, radius) minimising the rows a multi-index pHash search emits for ``n`` hashes.

    Split 64 bits into ``m`` bands: two hashes within ``d`` bits agree within
    ``d // m`` bits on at least one band (pigeonhole). Each hash emits every
    variant of each band within that radius, and a join on (band, value)
    finds the candidates: rows emitted grow linearly in ``n``; random
    candidate pairs grow as n^2 / 2^(64/m), which the cost counts too.
    """
    best = None
    for m in range(1, 9):
        r = max_distance // m
        width = math.ceil(64 / m)
        variants = m * sum(comb(width, k) for k in range(r + 1))
        cost = n * variants * (1 + n / 2**width)
        if best is None or cost < best[0]:
            best = (cost, m, r)
    return best[1], best[2]


def near_duplicates(con: duckdb.DuckDBPyConnection, probes: str, max_distance: int) -> None:
    """``_near_dup(path, distance)``: for each image, the smallest pHash distance (<= max) to an image with a smaller
    path.

    Exact byte duplicates are left to ``exact_dup``; the smaller path of a
    pair is the one kept, so one image per cluster survives.
    """
    n = con.execute(f"SELECT count(*) FROM {probes} WHERE phash IS NOT NULL").fetchone()[0]
    m, r = band_plan(max(n, 1), max_distance)
    width = math.ceil(64 / m)
    bands = [(i * width, min(64, (i + 1) * width)) for i in range(m)]
    band_sql = " UNION ALL ".join(
        f"SELECT path, phash, {i} AS band, (phash >> {lo}) & {(1 << (hi - lo)) - 1}::UBIGINT AS v FROM _h"
        for i, (lo, hi) in enumerate(bands)
    )
    # every variant within radius r of each band value: flip up to r of the band's bits
    flips = ["0::UBIGINT"]
    if r >= 1:
        flips = [f"(1::UBIGINT << {k})" for k in range(width)] + flips
    if r >= 2:
        flips += [f"((1::UBIGINT << {a}) | (1::UBIGINT << {b}))" for a in range(width) for b in range(a + 1, width)]
    if r >= 3:
        raise ValueError(f"near-duplicate radius {r} per band is not supported; lower max_distance ({max_distance})")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _h AS SELECT DISTINCT path, phash FROM {probes} WHERE phash IS NOT NULL"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _bands AS {band_sql}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _flips AS SELECT unnest([{', '.join(flips)}]) AS f")
    widths = " ".join(f"WHEN {i} THEN {(1 << (hi - lo)) - 1}::UBIGINT" for i, (lo, hi) in enumerate(bands))
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _near_dup AS
        SELECT a.path, min(bit_count(xor(a.phash, b.phash))) AS distance
        FROM _bands a, _flips fl, _bands b
        WHERE b.band = a.band AND b.v = xor(a.v, fl.f) AND (fl.f & ~(CASE a.band {widths} END)) = 0
          AND b.path < a.path AND bit_count(xor(a.phash, b.phash)) <= {int(max_distance)}
        GROUP BY a.path""")
    for t in ("_h", "_bands", "_flips"):
        con.execute(f"DROP TABLE {t}")
