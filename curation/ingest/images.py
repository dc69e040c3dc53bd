"""Image probing: does each referenced image exist, what size is it, what are its hashes.

Every image is probed once: the result is cached in the catalog's
``image_probes`` table under (path, size, mtime), so a re-run reads no image
it has seen. A probe reads the header for the size; the 64-bit pHash decodes
a JPEG in draft mode (1/8 scale), which is cheap. ``verify=True`` decodes the
full image as well, which finds truncated files the header does not show.
Probes run on a thread pool: file reads, sha256 and PIL's decoders release
the GIL, and threads need no pickling or fork of a process holding DuckDB.

Missing, corrupt and oversized (decompression bomb) images, and images whose
size differs from the annotated size, become rejects for the samples that
use them; those samples are not stored.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import stat
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from curation import catalog
from curation.ingest.staging import REC_REF

MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb threshold (0.25 GiB of 24-bit pixels)
MAX_FILE_BYTES = 256 << 20  # a bigger "image" is read by no training loader either


@dataclass
class Probe:
    path: str
    size_bytes: int | None
    mtime_ns: int | None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    sha256: str | None = None
    phash: int | None = None
    error: str | None = None  # "what: detail", like reject reasons


def phash64(img) -> int:
    """64-bit perceptual hash (imagehash.phash) as an unsigned integer; Hamming distance = bit_count(a xor b)."""
    import imagehash

    return int(str(imagehash.phash(img)), 16)


def probe(path: str | Path, *, verify: bool = False, max_pixels: int = MAX_PIXELS) -> Probe:
    """Probe one file. Never raises for a bad image: the problem is in ``error``."""
    from PIL import Image

    path = str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        return Probe(path, None, None, error=f"image missing: {exc.strerror}")
    out = Probe(path, st.st_size, st.st_mtime_ns)
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block, a device (/dev/zero) never ends
        out.error = "image not a regular file: a FIFO, device or socket is never opened"
        return out
    if st.st_size > MAX_FILE_BYTES:
        out.error = f"image too large: {st.st_size} bytes"
        return out
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)  # bounded by bytes read, not by what stat said
        if len(data) > MAX_FILE_BYTES:
            out.error = f"image too large: over {MAX_FILE_BYTES} bytes"
            return out
        out.sha256 = hashlib.sha256(data).hexdigest()
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                out.width, out.height, out.format = img.width, img.height, img.format
                if img.width * img.height > max_pixels:
                    out.error = (
                        f"image too large: {img.width}x{img.height} pixels exceeds {max_pixels} "
                        "(decompression bomb guard)"
                    )
                    return out
                if verify:
                    img.load()
                img.draft("L", (64, 64))
                out.phash = phash64(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        out.error = f"image too large: {exc}"
    except Exception as exc:  # PIL raises many types for bad bytes: all of them mean "unreadable"
        # PIL names the buffer by its repr (an address): the reason must be the same on every run
        detail = re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", os.path.basename(path), str(exc))
        out.error = f"image unreadable: {type(exc).__name__}: {detail}"
    return out


def probe_table(results: list[Probe]):
    """Probes as an Arrow table with ``image_probes``' columns (but verified and max_pixels)."""

    columns = ("path", "size_bytes", "mtime_ns", "width", "height", "format", "sha256", "error")
    table = pa.table({c: [getattr(r, c) for r in results] for c in columns})
    return table.append_column("phash", pa.array([r.phash for r in results], pa.uint64()))


class _ProbeBatch:
    """Ray Data's unit of work: a batch of paths in, their probes out (an actor pool holds these)."""

    def __init__(self, verify: bool, max_pixels: int):
        self.verify, self.max_pixels = verify, max_pixels

    def __call__(self, batch):
        paths = batch.column("path").to_pylist()
        return probe_table([probe(p, verify=self.verify, max_pixels=self.max_pixels) for p in paths])


def probe_many_ray(paths: list[str], *, verify: bool, max_pixels: int, ray_spec):
    """``probe_many`` on Ray Data: an actor pool of ``ray_spec.actors``, batches of 256 paths; rows in path order.

    Runs inside the caller (one Prefect task): only this driver writes the catalog."""
    import pyarrow.compute as pc

    from curation.ray_cluster import connect

    connect(ray_spec)
    import ray.data  # after connect: a local cluster's token must be set before Ray is first imported

    context = ray.data.DataContext.get_current()  # our own progress bar and report say what happens
    context.enable_progress_bars, context.print_on_execution_start = False, False
    logging.getLogger("ray.data").setLevel(logging.WARNING)

    size = max(1, min(4096, -(-len(paths) // (4 * ray_spec.actors))))  # blocks made here: no repartition task
    blocks = [pa.table({"path": paths[i : i + size]}) for i in range(0, len(paths), size)]
    ds = ray.data.from_arrow(blocks).map_batches(
        _ProbeBatch,
        fn_constructor_kwargs={"verify": verify, "max_pixels": max_pixels},
        batch_size=256,
        batch_format="pyarrow",
        concurrency=ray_spec.actors,
        num_cpus=ray_spec.cpus_per_actor,
    )
    table = pa.concat_tables(ray.get(ds.to_arrow_refs()))
    return table.take(pc.sort_indices(pc.index_in(table["path"], value_set=pa.array(paths))))


def probe_many(
    paths: list[str], *, verify: bool = False, max_pixels: int = MAX_PIXELS, workers: int | None = None
) -> list[Probe]:
    workers = workers or min(8, os.cpu_count() or 1)
    if len(paths) < 2 * workers:
        return [probe(p, verify=verify, max_pixels=max_pixels) for p in paths]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda p: probe(p, verify=verify, max_pixels=max_pixels), paths, chunksize=32))


@dataclass
class ImageCheck:
    """Where images live and how hard to look at them; applied to one file's staged rows."""

    roots: list[Path]
    verify: bool = False
    reject: bool = True  # False: keep samples with bad images and let the quality rules (image_*) flag them
    max_pixels: int = MAX_PIXELS
    workers: int | None = None
    ray: object | None = None  # a curation.ray_cluster.RaySpec: probe on Ray (same rows; cache as always)

    def __post_init__(self) -> None:
        # absolute once, here: stored paths, shard roots and export folders never depend on the working directory
        self.roots = [Path(r).resolve() for r in self.roots]

    def describe(self) -> dict:
        return {
            "roots": [str(r) for r in self.roots],
            "verify": self.verify,
            "max_pixels": self.max_pixels,
            "reject": self.reject,
        }

    def resolve(self, key: str) -> str | None:
        """The first root holding ``key``; the first root's path when none does (then the probe says missing).

        None when the key leaves the roots: absolute, ``..`` past the root, NUL bytes. Checked lexically, so
        symlinks a user placed inside a root still work.
        """
        if not inside_root(key):
            return None
        for root in self.roots:
            candidate = Path(root) / key
            if candidate.exists():
                return str(candidate)
        return str(Path(self.roots[0]) / key) if self.roots else key

    def root_holding(self, key: str) -> Path | None:
        """A folder one level off a root (a subfolder, or the parent) that holds ``key``: the root the user meant."""
        if not inside_root(key):
            return None
        for root in self.roots:
            below = sorted(e.path for e in os.scandir(root) if e.is_dir()) if root.is_dir() else []
            for folder in (root.parent, *map(Path, below)):
                if (folder / key).is_file():
                    return folder
        return None

    def apply(self, con: duckdb.DuckDBPyConnection) -> None:
        """Probe the staged samples' images (cache first) and reject the samples whose image is unusable."""
        keys = [r[0] for r in con.execute("SELECT DISTINCT image_key FROM new_samples").fetchall()]
        paths = {k: self.resolve(k) for k in keys}
        _reject_outside(con, [k for k, p in paths.items() if p is None])
        paths = {k: p for k, p in paths.items() if p is not None}
        options = {"verify": self.verify, "max_pixels": self.max_pixels, "workers": self.workers, "ray": self.ray}
        cached_probes(con, list(paths.values()), **options)
        con.execute("CREATE OR REPLACE TEMP TABLE staged_probes (image_key VARCHAR, path VARCHAR)")
        _stage_paths(con, paths)
        bad = """
            SELECT s.sample_id, s.image_key, s.width, s.rec_section, s.rec_index, s.rec_id,
                CASE WHEN p.error IS NOT NULL THEN p.error || ' (' || s.image_key || ')'
                     WHEN p.width <> s.width OR p.height <> s.height THEN
                        'image size mismatch: ' || s.image_key || ' is ' || p.width || 'x' || p.height ||
                        ' on disk, annotated ' || s.width || 'x' || s.height
                END AS reason
            FROM new_samples s JOIN staged_probes k USING (image_key) JOIN image_probes p ON p.path = k.path
        """
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE bad_images AS SELECT * FROM ({bad}) WHERE reason IS NOT NULL"
            + ("" if self.reject else " AND width = 0")
        )  # keep mode: only samples with no size at all go
        con.execute(f"INSERT INTO new_rejects SELECT {REC_REF}, reason FROM bad_images")
        con.execute("DELETE FROM new_samples WHERE sample_id IN (SELECT sample_id FROM bad_images)")
        con.execute(
            "UPDATE new_samples SET image_path = k.path FROM staged_probes k WHERE k.image_key = new_samples.image_key"
        )


def inside_root(key: str) -> bool:
    """A relative key that stays inside its root: not absolute, no ``..`` past the root, no NUL."""
    if not key or "\x00" in key or os.path.isabs(key) or key.startswith("~"):
        return False
    norm = os.path.normpath(key)
    return norm != ".." and not norm.startswith(".." + os.sep)


def _reject_outside(con: duckdb.DuckDBPyConnection, keys: list[str]) -> None:
    """Samples whose image key leaves the image roots are rejects; nothing outside the roots is ever opened."""
    if not keys:
        return

    with catalog.registered(con, "_outside", pa.table({"image_key": keys})):
        con.execute(
            f"INSERT INTO new_rejects SELECT {REC_REF}, 'image path outside the image roots: ' || image_key "
            "FROM new_samples WHERE image_key IN (SELECT image_key FROM _outside)"
        )
        con.execute("DELETE FROM new_samples WHERE image_key IN (SELECT image_key FROM _outside)")


def _stage_paths(con: duckdb.DuckDBPyConnection, paths: dict[str, str]) -> None:

    con.register("_paths", pa.table({"image_key": list(paths), "path": list(paths.values())}))
    con.execute("INSERT INTO staged_probes SELECT * FROM _paths")
    con.unregister("_paths")


def cached_probes(
    con: duckdb.DuckDBPyConnection,
    paths: list[str],
    *,
    verify: bool = False,
    max_pixels: int = MAX_PIXELS,
    workers: int | None = None,
    ray=None,
) -> int:
    """Make ``image_probes`` current for ``paths``; return how many files were actually probed (on Ray when
    ``ray``, a ``RaySpec``, is given: the same rows).

    A cached row is reused when the file's size and mtime still match and it
    was probed at least as thoroughly (a verified probe serves an unverified
    request, not the other way round).
    """
    cached = {}
    if paths:
        rows = con.execute(
            "SELECT path, size_bytes, mtime_ns, verified, max_pixels FROM image_probes WHERE path IN (SELECT "
            "unnest(?))",
            [paths],
        ).fetchall()
        cached = {p: (s, m, v, mp) for p, s, m, v, mp in rows}
    todo = []
    for p in paths:
        try:
            st = os.stat(p)
            key = (st.st_size, st.st_mtime_ns)
        except OSError:
            key = (None, None)
        hit = cached.get(p)
        if hit is None or (hit[0], hit[1]) != key or (verify and not hit[2]) or hit[3] != max_pixels:
            todo.append(p)
    if not todo:
        return 0
    if ray is None:
        table = probe_table(probe_many(todo, verify=verify, max_pixels=max_pixels, workers=workers))
    else:
        table = probe_many_ray(todo, verify=verify, max_pixels=max_pixels, ray_spec=ray)
    table = table.append_column("verified", pa.array([verify] * len(table))).append_column(
        "max_pixels", pa.array([max_pixels] * len(table), pa.int64())
    )
    with catalog.registered(con, "_probes", table), catalog.transaction(con):
        con.execute("DELETE FROM image_probes WHERE path IN (SELECT path FROM _probes)")
        con.execute("INSERT INTO image_probes BY NAME SELECT * FROM _probes")
    return len(todo)
