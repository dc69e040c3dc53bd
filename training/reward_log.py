"""Reading the per-sample reward log training writes (``reward_log.parquet``)."""

from __future__ import annotations

from pathlib import Path


def reward_curve(path: str | Path) -> list[dict]:
    """Mean reward and reward std per step over the samples of that step."""
    import duckdb

    sql = "SELECT step, avg(reward_mean), avg(reward_std), count(*) FROM read_parquet(?) GROUP BY step ORDER BY step"
    rows = duckdb.connect().execute(sql, [str(path)]).fetchall()
    return [{"step": s, "reward_mean": round(m, 4), "reward_std": round(sd, 4), "samples": n} for s, m, sd, n in rows]
