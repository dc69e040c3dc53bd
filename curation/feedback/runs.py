"""Training runs and their per-sample rewards in the catalog: what training learned, where curation can read it.

``record_run`` merges one finished training run: a ``runs`` row (checkpoint,
manifest and its sha256, recipe, scorer, the model it started from and, when
that model is one of our checkpoints, the parent run) and its
``reward_log.parquet`` as ``training_rewards`` (run, step, sample: reward mean
and std over the generations, each reward function's mean, completion
tokens). Both inserts skip what is there, so merging twice changes nothing.
``lineage`` and ``trained_samples`` answer "which runs, recipes, scorers and
samples made this checkpoint" by following parent runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation import catalog
from vlmr1.hashing import content_hash, sha256_file
from vlmr1.report import StageReport
from vlmr1.shards import read_manifest


class RunError(ValueError):
    """A training output that cannot be recorded (no train_result.json, no reward log, unknown manifest)."""


@dataclass
class Recorded:
    run_id: str
    checkpoint: str
    parent_run: str | None
    new_rewards: int
    unknown_samples: int

    def report(self) -> StageReport:
        counts = {
            "run": self.run_id,
            "checkpoint": self.checkpoint,
            "parent_run": self.parent_run,
            "reward_rows_merged": self.new_rewards,
            "unknown_samples": self.unknown_samples,
        }
        return StageReport("record", f"training run {self.run_id}", counts, files={"checkpoint": self.checkpoint})


def _resolved(path: str | Path) -> str:
    return str(Path(path).resolve())


def record_run(catalog_path: str | Path, manifest: str | Path, output_dir: str | Path, base_model: str) -> Recorded:
    """Merge the finished run in ``output_dir`` (trained on ``manifest`` from ``base_model``) into the catalog."""
    output_dir = Path(output_dir)
    result_path = output_dir / "train_result.json"
    if not result_path.is_file():
        raise RunError(f"{output_dir}: no train_result.json (the run did not finish)")
    result = json.loads(result_path.read_text())
    log = Path(result.get("reward_log") or output_dir / "reward_log.parquet")
    if not log.is_file():
        raise RunError(f"{output_dir}: no reward log ({log})")
    folder, m = read_manifest(manifest)
    checkpoint = _resolved(result["final"])
    manifest_sha = sha256_file(folder / "manifest.json")
    run_id = content_hash([checkpoint, manifest_sha], length=16)
    rewards = _reward_rows(run_id, log)
    with catalog.connect(catalog_path) as con, catalog.transaction(con):
        parent = con.execute("SELECT run_id FROM runs WHERE checkpoint = ?", [_resolved(base_model)]).fetchone()
        con.execute(
            """INSERT INTO runs (run_id, checkpoint, output_dir, manifest, manifest_sha256, recipe, recipe_hash,
                   scorer_key, base_model, parent_run, global_step)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
            [
                run_id, checkpoint, _resolved(output_dir), _resolved(folder / "manifest.json"), manifest_sha,
                m["recipe"]["name"], m["recipe"]["hash"], m.get("scorer_key"), base_model,
                parent[0] if parent else None, result.get("global_step"),
            ],
        )  # fmt: skip
        before = con.execute("SELECT count(*) FROM training_rewards WHERE run_id = ?", [run_id]).fetchone()[0]
        with catalog.registered(con, "_rewards", rewards):
            unknown = con.execute(
                "SELECT count(DISTINCT sample_id) FROM _rewards WHERE sample_id NOT IN (SELECT sample_id FROM samples)"
            ).fetchone()[0]
            con.execute("INSERT INTO training_rewards SELECT * FROM _rewards ON CONFLICT DO NOTHING")
        after = con.execute("SELECT count(*) FROM training_rewards WHERE run_id = ?", [run_id]).fetchone()[0]
    return Recorded(run_id, checkpoint, parent[0] if parent else None, after - before, unknown)


def _reward_rows(run_id: str, log: Path) -> pa.Table:
    """The folded reward log as ``training_rewards`` rows: each ``<reward>_mean`` column into one JSON object."""
    table = pq.read_table(log)
    names = [c for c in table.column_names if c.endswith("_mean") and c != "reward_mean"]
    columns = table.to_pydict()
    n = table.num_rows

    def finite(v):  # a reward that was NaN for the whole step (the other task's) is null in JSON
        return None if v is None or v != v else v

    per_reward = [json.dumps({c[: -len("_mean")]: finite(columns[c][i]) for c in names}) for i in range(n)]
    tokens = columns.get("completion_tokens", [None] * n)
    return pa.table(
        {
            "run_id": pa.array([run_id] * n, pa.string()),
            "step": pa.array(columns["step"], pa.int32()),
            "sample_id": pa.array(columns["sample_id"], pa.string()),
            "n": pa.array(columns["n"], pa.int32()),
            "reward_mean": pa.array(columns["reward_mean"], pa.float64()),
            "reward_std": pa.array(columns["reward_std"], pa.float64()),
            "rewards": pa.array(per_reward, pa.string()),
            "completion_tokens": pa.array(tokens, pa.float64()),
        }
    )


def lineage(catalog_path: str | Path, checkpoint: str | Path) -> list[dict]:
    """The runs that made ``checkpoint``, newest first, each with its manifest, recipe, scorer and sample count."""
    with catalog.connect(catalog_path) as con:
        rows = con.execute(
            """WITH RECURSIVE chain AS (
                   SELECT r.*, 0 AS depth FROM runs r WHERE checkpoint = ?
                   UNION ALL
                   SELECT r.*, c.depth + 1 FROM runs r JOIN chain c ON r.run_id = c.parent_run
               )
               SELECT c.run_id, c.checkpoint, c.base_model, c.parent_run, c.recipe, c.recipe_hash, c.scorer_key,
                   c.manifest, c.manifest_sha256, c.global_step,
                   (SELECT count(DISTINCT sample_id) FROM training_rewards t WHERE t.run_id = c.run_id) AS samples
               FROM chain c ORDER BY depth""",
            [_resolved(checkpoint)],
        )
        names = [d[0] for d in rows.description]
        return [dict(zip(names, r)) for r in rows.fetchall()]


def trained_samples(catalog_path: str | Path, checkpoint: str | Path) -> list[str]:
    """Every sample a training step of ``checkpoint``'s lineage generated for (its own run and its parents')."""
    runs = [r["run_id"] for r in lineage(catalog_path, checkpoint)]
    with catalog.connect(catalog_path) as con:
        rows = con.execute(
            "SELECT DISTINCT sample_id FROM training_rewards WHERE run_id IN (SELECT unnest(?)) ORDER BY sample_id",
            [runs],
        ).fetchall()
    return [r[0] for r in rows]


def lineage_report(catalog_path: str | Path, checkpoint: str | Path) -> StageReport:
    """``lineage`` as a report, one row per run; a checkpoint no recorded run produced is a ``StageFailed``."""
    from vlmr1.errors import StageFailed

    runs = lineage(catalog_path, checkpoint)
    if not runs:
        raise StageFailed(f"no recorded run produced {checkpoint} in {catalog_path} (record it with `vlmr1 record`)")
    rows = [
        {"run": r["run_id"], "checkpoint": r["checkpoint"], "started from": r["base_model"],
         "recipe": f"{r['recipe']} ({r['recipe_hash']})", "scorer": r["scorer_key"],
         "manifest sha256": r["manifest_sha256"][:16], "steps": r["global_step"], "samples": r["samples"]}
        for r in runs
    ]  # fmt: skip
    return StageReport("lineage", f"lineage of {checkpoint}", {"runs": len(rows)}, tables={"runs": rows})
