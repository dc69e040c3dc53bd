"""Evaluation results (``training.evaluate`` JSON) into the catalog's ``evaluations`` table, replacing a re-run's
rows. (Comparing arms: ``curation.ablation``.)"""

from __future__ import annotations

import json
from pathlib import Path

from curation import catalog


def record(catalog_path: str | Path, results: dict | str | Path, run: str = "cli") -> int:
    if not isinstance(results, dict):
        results = json.loads(Path(results).read_text())
    rows = [
        (run, results["checkpoint"], results["data"], key.rsplit("/", 1)[0], m["task"], metric, value, m["n"])
        for key, m in results["metrics"].items()
        for metric, value in m.items()
        if metric not in ("task", "n")
    ]
    with catalog.connect(catalog_path) as con, catalog.transaction(con):
        con.execute(
            "DELETE FROM evaluations WHERE run = ? AND checkpoint = ? AND data = ?",
            [run, results["checkpoint"], results["data"]],
        )
        con.executemany(
            "INSERT INTO evaluations (run, checkpoint, data, split, task, metric, value, n) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)
