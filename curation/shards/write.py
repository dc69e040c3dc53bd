"""Write a selection as curated shards: deterministic, checksummed parquet plus manifest.json, swapped in atomically.

Layout: the shards live in ``<parent>/.<name>.versions/<id>/`` and ``<out>``
is a symlink to the current version. A write goes to a temporary folder
(files fsynced, manifest last), is renamed to its version folder, and the
symlink is replaced by rename, so a reader sees the old set or the new one,
never half of one; a killed write leaves the previous output intact. The
same selection gives byte-identical shards (fixed row groups, compression
and column order; no timestamps).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from curation import catalog
from curation.selection.select import Selection, ordered
from curation.shards.columns import ROW_GROUP, check_tasks, image_table, prefetched, shard_batches
from vlmr1.hashing import sha256_file
from vlmr1.prompts import DEFAULT_TEMPLATE, get_template
from vlmr1.report import StageReport
from vlmr1.rewards import DEFAULT_DIALECT
from vlmr1.shards import FORMAT, SHARD_SCHEMA


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scorer(catalog_path: Path, key: str | None) -> dict | None:
    if key is None:
        return None
    with catalog.connect(catalog_path) as con:
        row = con.execute("SELECT spec FROM scorers WHERE scorer_key = ?", [key]).fetchone()
    return json.loads(row[0]) if row else None


def write_shards(
    selection: Selection,
    catalog_path: str | Path,
    out: str | Path,
    *,
    embed_images: bool = False,
    template: str | None = None,
    max_rows: int = 200_000,
    max_bytes: int = 512 << 20,
) -> Path:
    """Write ``selection`` to ``out`` (a symlink to its version folder); return the manifest path.

    A shard holds at most ``max_rows`` rows and about ``max_bytes`` of (uncompressed) arrow data.
    """
    catalog_path, out = Path(catalog_path), Path(out)
    if out.exists() and not out.is_symlink():
        raise FileExistsError(
            f"{out} exists and is not a shard output (a symlink to a version folder); choose another --out"
        )
    scorer = _scorer(catalog_path, selection.scorer_key)
    template = template or (scorer or {}).get("template", DEFAULT_TEMPLATE).split("@")[0]
    get_template(template)
    check_tasks(selection.table)
    versions = out.parent / f".{out.name}.versions"
    tmp = _fresh_tmp(versions)
    with ordered(selection) as con, ThreadPoolExecutor(1, "shard-report") as side:
        images, labels = image_table(con), label_counts(con)
        report = side.submit(_report, selection, labels, tmp)  # drawn while the shards are written
        roots = [] if embed_images else sorted(images["_root"].unique().to_list())
        checksums = None if embed_images else _image_checksums(images, roots, tmp)
        del images  # 2.5M rows at 10M samples: not held while the shards are written
        batches = shard_batches(con, selection, roots, template, embed_images)
        shards = _write_parquet(prefetched(batches, depth=1), tmp, max_rows, max_bytes)
        report.result()
    manifest = _manifest(selection, catalog_path, scorer, template, roots, embed_images, shards)
    if checksums is not None:
        manifest["images"] = checksums
    text = json.dumps(manifest, indent=2, sort_keys=True)
    (tmp / "manifest.json").write_text(text)
    _fsync(tmp / "manifest.json")
    _fsync(tmp)
    _publish(tmp, versions / hashlib.sha256(text.encode()).hexdigest()[:16], out)
    return out / "manifest.json"


def _image_checksums(images: pl.DataFrame, roots: list[str], tmp: Path) -> dict:
    """``images.parquet``: (root, path, sha256) of every image the shards point at, from the ingest probes, so a
    loader can check with ``verify_images`` that the files by path are still the ones the labels were made on."""
    index = images["_root"].replace_strict({r: i for i, r in enumerate(roots)}, return_dtype=pl.Int32)
    out = pa.table(
        {
            "root": index.to_arrow(),
            "path": images["_rel"].to_arrow().cast(pa.string()),
            "sha256": images["sha256"].to_arrow().cast(pa.string()),
        }
    )
    pq.write_table(out, tmp / "images.parquet")
    _fsync(tmp / "images.parquet")
    return {"file": "images.parquet", "rows": out.num_rows, "sha256": sha256_file(tmp / "images.parquet")}


def label_counts(con) -> pl.DataFrame:
    """(label, count) over the selection's solutions (``selection.ordered``), most frequent first."""
    con.abort()
    labels = catalog.frame(
        con,
        "SELECT l AS c, count(*) AS len FROM (SELECT unnest(json_extract_string(s.solution, '$[*].label')) AS l "
        "FROM _order o JOIN samples s USING (sample_id)) WHERE l IS NOT NULL GROUP BY l",
    )
    return labels.sort(["len", "c"], descending=[True, False])


def _fresh_tmp(versions: Path) -> Path:
    """This writer's scratch folder, after removing those of killed writers."""
    tmp = versions / f".tmp-{os.getpid()}"
    for stale in versions.glob(".tmp-*") if versions.exists() else []:
        if not _alive(int(stale.name.split("-")[1])):
            shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _write_parquet(batches, tmp: Path, max_rows: int, max_bytes: int) -> list[dict]:
    """Cut the batches into shards of at most ``max_rows`` rows and about ``max_bytes``; return their entries."""
    shards, writer, rows_in, bytes_in = [], None, 0, 0

    def close() -> None:
        if writer is not None:
            writer.close()
            f = tmp / shards[-1]["file"]
            _fsync(f)
            shards[-1].update(rows=rows_in, bytes=f.stat().st_size, sha256=sha256_file(f))

    for batch in batches:
        while batch.num_rows:
            if writer is None or rows_in >= max_rows or bytes_in >= max_bytes:
                close()
                shards.append({"file": f"shard-{len(shards):05d}.parquet"})
                writer = pq.ParquetWriter(
                    tmp / shards[-1]["file"], SHARD_SCHEMA, compression="zstd", compression_level=3
                )
                rows_in = bytes_in = 0
            per_row = max(1, batch.nbytes // batch.num_rows)
            take = max(1, min(batch.num_rows, max_rows - rows_in, (max_bytes - bytes_in) // per_row))
            part, batch = batch.slice(0, take), batch.slice(take)
            writer.write_batch(part, row_group_size=ROW_GROUP)
            rows_in += part.num_rows
            bytes_in += part.nbytes
    close()
    return shards


def _manifest(selection: Selection, catalog_path: Path, scorer, template: str, roots, embed: bool, shards) -> dict:
    """What the shards are: recipe, scorer, frame, template, catalog snapshot, counts, funnel and shard hashes."""
    table = selection.table

    def count(key: str) -> dict:
        if key not in table.columns:
            return {"None": table.height} if table.height else {}
        return dict(sorted(table.group_by(pl.col(key).cast(pl.String).fill_null("None")).len().iter_rows()))

    return {
        "format": FORMAT,
        "package_version": _version(),
        "recipe": {
            "name": selection.recipe.name,
            "hash": selection.recipe.hash,
            "content": selection.recipe.canonical(),
        },
        "scorer_key": selection.scorer_key,
        "scorer": scorer,
        "family": (scorer or {}).get("family"),
        "dialect": (scorer or {}).get("dialect", DEFAULT_DIALECT),  # the reward semantics the labels were scored in
        "template": get_template(template).key(),
        "catalog": catalog.snapshot(catalog_path),
        "image_roots": roots,
        "embedded_images": embed,
        "counts": {
            "rows": table.height,
            "by_source": count("source"),
            "by_task": count("task"),
            "by_band": count("band"),
        },
        "funnel": [{"step": s, "samples": c} for s, c in selection.funnel],
        "shards": shards,
    }


def _publish(tmp: Path, version: Path, out: Path) -> None:
    """Rename the finished folder to its content-addressed version, then swap ``out``'s symlink atomically."""
    if version.exists():
        shutil.rmtree(tmp)  # the same bytes are already there
    else:
        os.rename(tmp, version)
    link = out.parent / f".{out.name}.link-{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(version.relative_to(out.parent))
    os.replace(link, out)
    _fsync(out.parent)


def _alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)


def _version() -> str:
    from importlib.metadata import version

    return version("vlmr1-curate")


def _report(selection: Selection, cats: pl.DataFrame, folder: Path) -> None:
    """selection.md and selection.png next to the manifest: funnel, difficulty histogram, source and category mix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = selection.table
    mix = table.group_by(pl.concat_str(["source", "task"], separator=" / ").alias("m"), maintain_order=True).len()
    lines = [f"# Selection: {selection.recipe.name} ({selection.recipe.hash})", "", "| step | samples |", "|---|---:|"]
    lines += [f"| {s} | {c} |" for s, c in selection.funnel]
    lines += ["", "| source / task | samples |", "|---|---:|"]
    lines += [f"| {k} | {c} |" for k, c in sorted(mix.iter_rows())]
    lines += ["", "Top categories / expressions: " + ", ".join(f"{k} ({v})" for k, v in cats.head(20).iter_rows())]
    (folder / "selection.md").write_text("\n".join(lines) + "\n")
    rates = table["pass_rate"].drop_nulls().to_numpy() if "pass_rate" in table.columns else []
    fig, axes = plt.subplots(1, 3 if len(rates) else 2, figsize=(15 if len(rates) else 11, 4.5))
    _funnel_panel(axes[0], selection.funnel)
    if len(rates):
        axes[1].hist(rates, bins=[i / 10 for i in range(11)], color="#c97b2a")
        axes[1].set(title=f"difficulty of the selected ({len(rates)} scored)", xlabel="pass rate", ylabel="samples")
        axes[1].yaxis.get_major_locator().set_params(integer=True)
    mix_ax = axes[-1]
    mix_ax.bar(range(mix.height), mix["len"].to_list(), color="#5a9e5a")
    mix_ax.set_xticks(range(mix.height), [m.replace(" / ", "/") for m in mix["m"].to_list()], rotation=25, ha="right")
    mix_ax.set(title="source / task mix", ylabel="samples")
    mix_ax.yaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"selection: recipe {selection.recipe.name}, {table.height} samples")
    fig.tight_layout()
    fig.savefig(folder / "selection.png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def _selection_files(folder: Path) -> dict[str, str]:
    found = {"selection report": folder / "selection.md", "selection plot": folder / "selection.png"}
    return {what: str(path) for what, path in found.items() if path.is_file()}


def _funnel_panel(ax, funnel: list[tuple[str, int]]) -> None:
    """Samples left after each step, steps named in full (wrapped, not cut)."""
    import textwrap

    steps = [textwrap.fill(step, 34) for step, _ in funnel]
    bars = ax.barh(range(len(steps)), [c for _, c in funnel], color="#4a7ab5")
    ax.bar_label(bars, padding=3, fontsize=8)
    ax.set_yticks(range(len(steps)), steps, fontsize=9)
    ax.margins(x=0.15)
    ax.invert_yaxis()
    ax.set(title="funnel", xlabel="samples left")


def shard_report(manifest_path: str | Path, pool: str = "train") -> StageReport:
    """What a shard write produced, read back from its manifest (the one record of it)."""
    manifest_path = Path(manifest_path)
    m = json.loads(manifest_path.read_text())
    counts = {
        "recipe": m["recipe"]["name"],
        "pool": pool,
        "rows": m["counts"]["rows"],
        "shards": len(m["shards"]),
        "scorer": m["scorer_key"],
        "manifest_sha256": sha256_file(manifest_path),
    }
    by = [
        {"group": f"{k}: {g}", "samples": n}
        for k in ("by_source", "by_task", "by_band")
        for g, n in m["counts"][k].items()
    ]
    return StageReport(
        "shard",
        f"shards: {m['recipe']['name']} ({pool})",
        counts,
        funnel=[(s["step"], s["samples"]) for s in m["funnel"]],
        tables={"counts": by},
        files={"manifest": str(manifest_path)} | _selection_files(manifest_path.parent),
    )
