"""Curated shards: the contract between curation and training (ARCHITECTURE.md). Training reads these, never the
catalog.

A shard set is a folder: parquet files (``SHARD_SCHEMA``) and ``manifest.json``
(written last) with every file's rows, bytes and sha256. ``load`` verifies
each file before reading it and returns a ``datasets.Dataset`` whose
``image`` column is a decoded ``Image`` feature and whose ``prompt`` column
is the conversational form TRL's ``GRPOTrainer`` expects.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa

from vlmr1.hashing import sha256_file

FORMAT = "vlmr1-shards/1"
_CONTENT = pa.list_(pa.struct([("type", pa.string()), ("text", pa.string())]))
SHARD_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("task", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", _CONTENT)]))),
        (
            "image",
            pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
        ),  # datasets' Image storage: bytes, or a path
        ("image_root", pa.int32()),  # index into the manifest's image_roots for a relative path; null when embedded
        ("problem", pa.string()),
        ("solution", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("pass_rate", pa.float64()),
        ("reward_std", pa.float64()),
        ("band", pa.string()),
        ("n_pass", pa.int32()),
        ("k", pa.int32()),
        ("image_id", pa.int64()),
        ("ann_id", pa.int64()),
        ("ref_id", pa.int64()),
        ("sent_id", pa.int64()),
        ("source_sha256", pa.string()),
    ]
)


class ShardError(ValueError):
    """A shard set that must not be trained on: missing, truncated or altered file, unknown format."""


def read_manifest(path: str | Path) -> tuple[Path, dict]:
    """(folder, manifest) from a folder or its manifest.json; ShardError (one line) when it is not a manifest."""
    path = Path(path)
    if not path.exists():
        raise ShardError(f"{path}: no such shard folder{_shard_sets_beside(path)}")
    folder = path if path.is_dir() else path.parent
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise ShardError(f"{folder}: no manifest.json (an incomplete or interrupted write never has one)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ShardError(f"{manifest_path}: not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ShardError(f"{manifest_path}: format {got!r}, expected {FORMAT!r}")
    if not isinstance(manifest.get("shards"), list) or not isinstance(manifest.get("counts"), dict):
        raise ShardError(f"{manifest_path}: no 'shards' list or 'counts' (not a shard manifest)")
    return folder, manifest


def _shard_sets_beside(path: Path) -> str:
    """The shard sets in the folder a mistyped path points into, for the error message."""
    parent = path.parent if path.name != "manifest.json" else path.parent.parent
    found = sorted(str(p.parent) for p in parent.glob("*/manifest.json")) if parent.is_dir() else []
    return f"; shard sets there: {', '.join(found[:5])}" if found else ""


def manifest_dialect(manifest: dict) -> str:
    """The reward dialect the shards' difficulty labels were scored in (manifests before dialects: ours)."""
    from vlmr1.rewards import DEFAULT_DIALECT

    return manifest.get("dialect", DEFAULT_DIALECT)


def verify(folder: Path, manifest: dict) -> None:
    """Every listed shard inside the folder, complete and unaltered; no shard dropped; the row count adds up."""
    listed = []
    for shard in manifest["shards"]:
        name = str(shard.get("file", ""))
        if Path(name).name != name or not name.endswith(".parquet"):
            raise ShardError(f"{folder}: shard entry {name!r} is not a file name inside the folder")
        f = folder / name
        listed.append(name)
        if not f.is_file():
            raise ShardError(f"{f}: missing")
        size = f.stat().st_size
        if size != shard["bytes"]:
            raise ShardError(f"{f}: {size} bytes, the manifest says {shard['bytes']} (truncated or replaced)")
        if sha256_file(f) != shard["sha256"]:
            raise ShardError(f"{f}: sha256 differs from the manifest (the file was altered)")
    on_disk = sorted(p.name for p in folder.glob("shard-*.parquet"))
    if sorted(listed) != on_disk:
        raise ShardError(f"{folder}: shard files {on_disk} differ from the manifest's {sorted(listed)}")
    rows, counted = sum(int(s.get("rows", -1)) for s in manifest["shards"]), manifest["counts"].get("rows")
    if rows != counted:
        raise ShardError(f"{folder}: the shards hold {rows} rows, the manifest counts {counted}")
    _verify_image_checksums(folder, manifest)


def _verify_image_checksums(folder: Path, manifest: dict) -> None:
    """``images.parquet`` (the ingest checksums of the images the shards point at) as the manifest lists it: the set
    is only as trustworthy as the file ``--verify-images`` reads."""
    entry = manifest.get("images")
    if entry is None:
        return  # embedded images are covered by the shard checksums
    f = folder / "images.parquet"
    if entry.get("file") != "images.parquet":
        raise ShardError(f"{folder}: the manifest's images entry names {entry.get('file')!r}, not images.parquet")
    if not f.is_file():
        raise ShardError(f"{f}: missing (the manifest lists it with a sha256)")
    if sha256_file(f) != entry["sha256"]:
        raise ShardError(f"{f}: sha256 differs from the manifest (the file was altered)")


def verify_images(folder: Path, manifest: dict, roots: list[str]) -> int:
    """Re-hash every image the shards point at by path; ShardError names the first that changed. Returns the count."""
    import pyarrow.parquet as pq

    entry = manifest.get("images")
    if entry is None:
        return 0  # embedded images are covered by the shard checksums
    _verify_image_checksums(folder, manifest)
    for row in pq.read_table(folder / "images.parquet").to_pylist():
        image = Path(roots[row["root"]]) / row["path"]
        if row["sha256"] is None or not image.is_file() or sha256_file(image) != row["sha256"]:
            raise ShardError(f"{image}: missing or changed since the shards were written (sha256 differs)")
    return entry["rows"]


def load_table(
    path: str | Path, *, image_roots: list[str] | None = None, check: bool = True, check_images: bool = False
) -> tuple[pa.Table, dict]:
    """The verified shards as one arrow table, image paths resolved to absolute paths; ``check_images`` also
    re-hashes every image stored by path."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder, manifest = read_manifest(path)
    if check:
        verify(folder, manifest)
    if check_images:
        verify_images(folder, manifest, image_roots or manifest["image_roots"])
    tables = [pq.read_table(folder / s["file"]) for s in manifest["shards"]]
    table = pa.concat_tables(tables) if tables else SHARD_SCHEMA.empty_table()
    roots = image_roots or manifest["image_roots"]
    if len(roots) != len(manifest["image_roots"]):
        raise ShardError(f"{folder}: {len(roots)} image roots given, the shards use {len(manifest['image_roots'])}")
    if roots and table.num_rows:
        image = table.column("image").combine_chunks()
        rel, idx = image.field("path"), table.column("image_root").combine_chunks()
        root_of = pc.take(pa.array([str(Path(r)) + "/" for r in roots]), pc.fill_null(idx, 0))
        absolute = pc.if_else(pc.is_null(idx), rel, pc.binary_join_element_wise(root_of, rel, ""))
        resolved = pa.StructArray.from_arrays([image.field("bytes"), absolute], names=["bytes", "path"])
        table = table.set_column(table.schema.get_field_index("image"), "image", resolved)
    return table, manifest


def load(path: str | Path, *, image_roots: list[str] | None = None, check: bool = True, check_images: bool = False):
    """A ``datasets.Dataset`` of the shards (checksums verified first), ``image`` decoded as PIL on access."""
    import datasets

    table, manifest = load_table(path, image_roots=image_roots, check=check, check_images=check_images)
    # The manifest names every shard by sha256: it identifies the data, so datasets need not hash the whole table
    # to fingerprint it (that hashing was most of a load).
    identity = json.dumps([manifest, image_roots or manifest["image_roots"]], sort_keys=True)
    fingerprint = hashlib.sha256(identity.encode()).hexdigest()[:16]
    ds = datasets.Dataset(datasets.table.InMemoryTable(table), fingerprint=fingerprint)
    return ds.cast_column("image", datasets.Image())
