"""What is inside a catalog, section by section, as rows with the same keys (``vlmr1 catalog``): the summary,
sources, rejects by reason with an example each, recipes with their kept/dropped/flagged counts, scorer keys
with what they scored, training runs and evaluations. Read-only: a missing catalog is an error, never created."""

from __future__ import annotations

from pathlib import Path

SECTIONS = {
    "summary": """
        SELECT 'samples' AS what, count(*) AS count FROM samples
        UNION ALL SELECT 'sources', count(*) FROM sources
        UNION ALL SELECT 'images', count(*) FROM images
        UNION ALL SELECT 'rejects', count(*) FROM rejects
        UNION ALL SELECT 'recipes evaluated', count(*) FROM recipes
        UNION ALL SELECT 'scorers', count(*) FROM scorers
        UNION ALL SELECT 'scored samples', count(*) FROM difficulty
        UNION ALL SELECT 'training runs', count(*) FROM runs
        UNION ALL SELECT 'evaluation rows', count(*) FROM evaluations""",
    "sources": """
        SELECT source, kind, path, n_samples AS samples, n_rejects AS rejects, n_records AS records,
               strftime(ingested_at, '%Y-%m-%d %H:%M') AS ingested, left(content_sha256, 16) AS sha256
        FROM sources ORDER BY source, path""",
    "rejects": """
        SELECT reason, count(*) AS count, count(DISTINCT path) AS files,
               arg_min(path || ' ' || section || ' #' || record_index || coalesce(' (' || record_id || ')', ''),
                       record_index) AS example
        FROM rejects GROUP BY reason ORDER BY count DESC, reason""",
    "recipes": """
        SELECT r.name, r.recipe_hash AS hash, strftime(r.evaluated_at, '%Y-%m-%d %H:%M') AS evaluated,
               (SELECT count(*) FROM samples) - count(DISTINCT q.sample_id) FILTER (WHERE q.action = 'drop') AS kept,
               count(DISTINCT q.sample_id) FILTER (WHERE q.action = 'drop') AS dropped,
               count(DISTINCT q.sample_id) FILTER (WHERE q.action = 'flag') AS flagged,
               r.sources_sha256 = ? AS current
        FROM recipes r LEFT JOIN quality_flags q USING (recipe_hash)
        GROUP BY ALL ORDER BY r.name, evaluated""",
    "scorers": """
        SELECT s.scorer_key AS key, json_extract_string(s.spec, '$.model') AS model,
               json_extract_string(s.spec, '$.k') AS k, count(d.sample_id) AS scored,
               round(avg(d.pass_rate), 3) AS mean_pass_rate, strftime(s.created_at, '%Y-%m-%d %H:%M') AS created
        FROM scorers s LEFT JOIN difficulty d USING (scorer_key) GROUP BY ALL ORDER BY created""",
    "runs": """
        SELECT run_id AS run, recipe, scorer_key AS scorer, global_step AS steps, coalesce(parent_run, '') AS parent,
               checkpoint, strftime(created_at, '%Y-%m-%d %H:%M') AS created
        FROM runs ORDER BY created_at""",
    "evaluations": """
        SELECT run, data, split, task, metric, round(value, 4) AS value, n FROM evaluations
        ORDER BY run, split, task, metric""",
}


class NoCatalog(FileNotFoundError):
    pass


def require_catalog(path: str | Path) -> Path:
    """Commands that read a catalog refuse a missing one (a typo would otherwise create an empty catalog and
    report nothing to do)."""
    if not Path(path).is_file():
        raise NoCatalog(f"{path}: no such catalog (create one with `vlmr1 ingest ... --catalog {path}`)")
    return Path(path)


def overview(path: str | Path, sections: list[str] | None = None) -> dict[str, list[dict]]:
    """``{section: rows}`` for the named sections (default: all), read from ``path`` without writing to it."""
    from curation.catalog import read_only, sources_sha256

    path = Path(path)
    if not path.is_file():
        raise NoCatalog(f"{path}: no such catalog (create one with `vlmr1 ingest ... --catalog {path}`)")
    unknown = set(sections or []) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown section {sorted(unknown)[0]!r}; sections: {', '.join(SECTIONS)}")
    with read_only(path) as con:
        current, out = sources_sha256(con), {}
        for name in sections or list(SECTIONS):
            cur = con.execute(SECTIONS[name], [current] if name == "recipes" else [])
            cols = [d[0] for d in cur.description]
            out[name] = [dict(zip(cols, row)) for row in cur.fetchall()]
        return out
