"""Re-profiling: the same samples' difficulty under two scorers (the base model and a trained checkpoint) side by
side, and how many moved band, by source, task and category (table, markdown and PNG)."""

from __future__ import annotations

from pathlib import Path

from curation import catalog
from vlmr1.report import StageReport

BANDS = ["all_fail", "zero_std", "mixed", "all_pass"]

_PAIRS = """
    SELECT b.sample_id, s.source, s.task,
        coalesce(list_min(json_extract_string(s.solution, '$[*].label')), '(none)') AS category,
        b.pass_rate AS base, c.pass_rate AS current, b.band AS base_band, c.band AS current_band
    FROM difficulty b JOIN difficulty c USING (sample_id) JOIN samples s USING (sample_id)
    WHERE b.scorer_key = ? AND c.scorer_key = ?
"""

_BY = """
    SELECT {key} AS "group", count(*) AS samples, count(*) FILTER (WHERE base_band <> current_band) AS moved_band,
        count(*) FILTER (WHERE current > base) AS easier, count(*) FILTER (WHERE current < base) AS harder,
        round(avg(base), 4) AS base_pass_rate, round(avg(current), 4) AS current_pass_rate
    FROM _pairs GROUP BY ALL ORDER BY "group"
"""


def band_movement(catalog_path: str | Path, base: str, current: str, out: str | Path | None = None) -> StageReport:
    """Per-sample pass rates under ``base`` and ``current`` scorer keys, aggregated: overall, by source, task and
    category, and the band transition counts. ``out``: also ``reprofile.md`` and ``reprofile.png`` there."""
    with catalog.connect(catalog_path) as con:
        for key in (base, current):
            if not con.execute("SELECT 1 FROM scorers WHERE scorer_key = ?", [key]).fetchone():
                raise ValueError(f"no scorer {key!r} in {catalog_path}; run `vlmr1 score` with that model first")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _pairs AS {_PAIRS}", [base, current])
        tables = {
            by: _rows(con, _BY.format(key="'all'" if by == "all" else by))
            for by in ("all", "source", "task", "category")
        }
        tables["transitions"] = _rows(
            con,
            "SELECT base_band, current_band, count(*) AS samples FROM _pairs GROUP BY ALL ORDER BY base_band, "
            "current_band",
        )
        points = con.execute("SELECT base, current, task FROM _pairs").fetchall()
    overall = tables["all"][0] if tables["all"] else {"samples": 0, "moved_band": 0}
    counts = {"base": base, "current": current, "samples": overall["samples"], "moved_band": overall["moved_band"]}
    files = {}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        plot = _plot(out, points, tables["transitions"])
        files = {"markdown": str(_markdown(out / "reprofile.md", counts, tables)), "plot": str(plot)}
    return StageReport("reprofile", f"re-profiled: {base[:12]} -> {current[:12]}", counts, tables=tables, files=files)


def _rows(con, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


def _markdown(path: Path, counts: dict, tables: dict) -> Path:
    lines = [f"# Re-profiling: {counts['base']} -> {counts['current']}", ""]
    lines.append(f"{counts['moved_band']} of {counts['samples']} samples scored by both moved band.")
    for name, rows in tables.items():
        if not rows:
            continue
        keys = list(rows[0])
        lines += ["", f"## {name}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _plot(out: Path, points: list[tuple], transitions: list[dict]) -> Path:
    """Base vs current pass rate per sample (jittered, by task) beside the band-transition counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rng = np.random.default_rng(0)
    fig, (ax, tx) = plt.subplots(1, 2, figsize=(12, 5.2))
    for task, colour in (("rec", "#4a7ab5"), ("ovd", "#c97b2a")):
        xy = np.array([(b, c) for b, c, t in points if t == task], dtype=float).reshape(-1, 2)
        jitter = rng.uniform(-0.02, 0.02, xy.shape)
        ax.scatter(*(xy + jitter).T, s=18, alpha=0.6, color=colour, label=f"{task} ({len(xy)})")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="unchanged")
    ax.set_xlabel("pass rate under the base scorer")
    ax.set_ylabel("pass rate under the current policy")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("each sample's pass rate, before and after training")
    ax.legend(loc="upper left")
    grid = np.zeros((len(BANDS), len(BANDS)), dtype=int)
    for t in transitions:
        grid[BANDS.index(t["base_band"]), BANDS.index(t["current_band"])] = t["samples"]
    tx.imshow(grid, cmap="Blues")
    for i, j in np.ndindex(grid.shape):
        tx.text(
            j, i, str(grid[i, j]), ha="center", va="center", color="black" if grid[i, j] < grid.max() / 2 else "white"
        )
    tx.set_xticks(range(len(BANDS)), BANDS)
    tx.set_yticks(range(len(BANDS)), BANDS)
    tx.set_xlabel("band under the current policy")
    tx.set_ylabel("band under the base scorer")
    tx.set_title("band transitions (samples)")
    fig.tight_layout()
    path = out / "reprofile.png"
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path
