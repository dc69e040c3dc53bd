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
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation import catalog
from curation.selection import Selection
from vlmr1.hashing import sha256_file
from vlmr1.prompts import build_messages, get_template
from vlmr1.report import StageReport
from vlmr1.rewards import DEFAULT_DIALECT
from vlmr1.shards import FORMAT, SHARD_SCHEMA

ROW_GROUP = 8192


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _root_and_key(row: dict) -> tuple[str, str]:
    path, key = row.get("image_path"), row["image_key"]
    if not path:
        raise ValueError(
            f"sample {row['sample_id']} has no image file: ingest its source with --images before sharding"
        )
    if path.endswith("/" + key):
        return path[: -len(key) - 1], key
    return str(Path(path).parent), Path(path).name


def _scorer(catalog_path: Path, key: str | None) -> dict | None:
    if key is None:
        return None
    with catalog.connect(catalog_path) as con:
        row = con.execute("SELECT spec FROM scorers WHERE scorer_key = ?", [key]).fetchone()
    return json.loads(row[0]) if row else None


def shard_rows(selection: Selection, roots: list[str], template: str, embed_images: bool):
    """Arrow record batches in SHARD_SCHEMA order, ROW_GROUP rows each."""
    batch: list[dict] = []
    for r in selection.rows:
        root, rel = _root_and_key(r)
        if embed_images:
            with open(Path(root) / rel, "rb") as fh:
                image, image_root = {"bytes": fh.read(), "path": rel}, None
        else:
            image, image_root = {"bytes": None, "path": rel}, roots.index(root)
        messages = build_messages(r["task"], r["problem"], template)
        prompt = [
            {"role": m["role"], "content": [{"type": c["type"], "text": c.get("text")} for c in m["content"]]}
            for m in messages
        ]
        batch.append(
            {**{k: r.get(k) for k in SHARD_SCHEMA.names}, "prompt": prompt, "image": image, "image_root": image_root}
        )
        if len(batch) == ROW_GROUP:
            yield pa.RecordBatch.from_pylist(batch, schema=SHARD_SCHEMA)
            batch = []
    if batch:
        yield pa.RecordBatch.from_pylist(batch, schema=SHARD_SCHEMA)


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
    template = template or (scorer or {}).get("template", "vlmr1").split("@")[0]
    get_template(template)
    roots = [] if embed_images else sorted({_root_and_key(r)[0] for r in selection.rows})
    versions = out.parent / f".{out.name}.versions"
    tmp = _fresh_tmp(versions)
    shards = _write_parquet(shard_rows(selection, roots, template, embed_images), tmp, max_rows, max_bytes)
    manifest = _manifest(selection, catalog_path, scorer, template, roots, embed_images, shards)
    if not embed_images:
        manifest["images"] = _image_checksums(selection, catalog_path, roots, tmp)
    text = json.dumps(manifest, indent=2, sort_keys=True)
    _report(selection, tmp)
    (tmp / "manifest.json").write_text(text)
    _fsync(tmp / "manifest.json")
    _fsync(tmp)
    _publish(tmp, versions / hashlib.sha256(text.encode()).hexdigest()[:16], out)
    return out / "manifest.json"


def _image_checksums(selection: Selection, catalog_path: Path, roots: list[str], tmp: Path) -> dict:
    """``images.parquet``: (root, path, sha256) of every image the shards point at, from the ingest probes, so a
    loader can check with ``verify_images`` that the files by path are still the ones the labels were made on."""
    keys = sorted({_root_and_key(r) for r in selection.rows})
    absolute = [str(Path(root) / rel) for root, rel in keys]
    with catalog.connect(catalog_path) as con:
        sha = dict(
            con.execute(
                "SELECT path, sha256 FROM image_probes WHERE path IN (SELECT unnest(?))", [absolute]
            ).fetchall()
        )
    table = pa.table(
        {
            "root": pa.array([roots.index(root) for root, _ in keys], pa.int32()),
            "path": [rel for _, rel in keys],
            "sha256": [sha.get(a) for a in absolute],
        }
    )
    pq.write_table(table, tmp / "images.parquet")
    _fsync(tmp / "images.parquet")
    return {"file": "images.parquet", "rows": table.num_rows, "sha256": sha256_file(tmp / "images.parquet")}


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
    rows = selection.rows

    def count(key: str) -> dict:
        return dict(sorted(Counter(str(r.get(key)) for r in rows).items()))

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
            "rows": len(rows),
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


def _report(selection: Selection, folder: Path) -> None:
    """selection.md and selection.png next to the manifest: funnel, difficulty histogram, source and category mix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = selection.rows
    cats = Counter(t["label"] for r in rows for t in json.loads(r["solution"]))
    lines = [f"# Selection: {selection.recipe.name} ({selection.recipe.hash})", "", "| step | samples |", "|---|---:|"]
    lines += [f"| {s} | {c} |" for s, c in selection.funnel]
    lines += ["", "| source / task | samples |", "|---|---:|"]
    lines += [f"| {k} | {c} |" for k, c in sorted(Counter(f"{r['source']} / {r['task']}" for r in rows).items())]
    lines += [
        "",
        "Top categories / expressions: "
        + ", ".join(f"{k} ({v})" for k, v in sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))[:20]),
    ]
    (folder / "selection.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    steps = [s for s, _ in selection.funnel]
    axes[0].barh(range(len(steps)), [c for _, c in selection.funnel], color="#4a7ab5")
    axes[0].set_yticks(range(len(steps)), [s[:38] for s in steps], fontsize=7)
    axes[0].invert_yaxis()
    axes[0].set_title("funnel")
    rates = [r["pass_rate"] for r in rows if r.get("pass_rate") is not None]
    axes[1].hist(rates, bins=[i / 10 for i in range(11)], color="#c97b2a")
    axes[1].set_title(f"pass rate ({len(rates)} scored)")
    mix = Counter(f"{r['source']}/{r['task']}" for r in rows)
    axes[2].bar(range(len(mix)), list(mix.values()), color="#5a9e5a")
    axes[2].set_xticks(range(len(mix)), list(mix), rotation=30, fontsize=7)
    axes[2].set_title("source / task mix")
    fig.tight_layout()
    fig.savefig(folder / "selection.png", dpi=100, metadata={"Software": None})
    plt.close(fig)


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
        files={"manifest": str(manifest_path)},
    )
