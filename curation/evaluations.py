"""Evaluation results (``training.evaluate`` JSON) into the catalog's ``evaluations`` table, replacing a re-run's
rows."""

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


def write_comparison(rows: list[dict], out: Path) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    metrics = [k for k in ("acc@0.5", "mean_iou", "mAP", "AP50") if any(k in r for r in rows)]
    lines = [
        "# Ablation",
        "",
        "| recipe | pool size | split | " + " | ".join(metrics) + " |",
        "|---|---:|---|" + "---:|" * len(metrics),
    ]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['pool_size']} | {r['split']} | "
            + " | ".join(f"{r[m]:.4f}" if isinstance(r.get(m), float) else str(r.get(m, "")) for m in metrics)
            + " |"
        )
    md = out / "comparison.md"
    md.write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(8, 3.5))
    recipes = sorted({r["recipe"] for r in rows})
    splits = sorted({r["split"] for r in rows})
    metric = metrics[0] if metrics else None
    width = 0.8 / max(len(recipes), 1)
    for i, rec in enumerate(recipes):
        vals = [
            next((r.get(metric) or 0.0 for r in rows if r["recipe"] == rec and r["split"] == s), 0.0) for s in splits
        ]
        ax.bar([j + i * width for j in range(len(splits))], vals, width, label=rec)
    ax.set_xticks([j + width * (len(recipes) - 1) / 2 for j in range(len(splits))], splits, rotation=20, fontsize=7)
    ax.set_ylabel(metric or "")
    ax.legend()
    ax.set_title("ablation: same pool size, budget and seed")
    fig.tight_layout()
    png = out / "comparison.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return md, png
