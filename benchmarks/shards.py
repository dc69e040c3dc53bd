"""Selection and shards, columnar (issue 18) vs the row-wise code it replaced vs the peer a user would write
(``datasets``): one run, the ways alternated over rounds, median ratios and spread.

Part 1, ``--rows`` (default 1,000,000) scored samples in a synthetic catalog
(``kit.scale``: REC and OVD, four samples per image, 2% dropped
by quality, 95% scored), the ``none`` recipe (balanced by source):
- select: ``rowwise.select`` (a dict per row) vs ``curation.selection.select.select``;
- write: the row-wise shard rows through the same parquet writer vs
  ``write_shards`` (which also fsyncs, hashes, and draws the report) vs
  ``datasets.Dataset.from_dict(columns).to_parquet`` of the same columns
  (built before the clock starts);
- load: ``rowwise.load`` (the previous ``vlmr1.shards.load``) vs
  ``vlmr1.shards.load`` vs ``datasets.load_dataset("parquet", ...)`` (a fresh
  cache: a first load), each timed inside a fresh process, as a training job
  loads its shards once when it starts (imports not counted).

Part 2, ``--e2e`` (default 10,000,000) samples: ``select`` + ``write_shards``
end to end in a fresh process: wall time and peak RSS.

    .venv/bin/python benchmarks/shards.py [--rows 1000000] [--rounds 5] [--e2e 10000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from curation.quality.recipe import load_recipe
from curation.selection.select import select
from curation.shards.write import _report, _write_parquet, write_shards

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test kit: tests/kit
from kit import rowwise, scale  # noqa: E402


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _old_write(sel, rows: list[dict], db: Path, out: Path) -> None:
    """What the row-wise writer did: a dict and a prompt per row into the same parquet writer (fsync, sha256),
    counts, categories and image checksums over the dicts, the same report drawing."""
    import polars as pl

    roots = sorted({rowwise.root_and_key(r)[0] for r in rows})
    out.mkdir()
    _write_parquet(rowwise.shard_batches(rows, roots, "vlmr1", False), out, 200_000, 512 << 20)
    rowwise.counts(rows)
    pq.write_table(pa.table(rowwise.image_checksums(rows, roots, db)), out / "images.parquet")
    cats = rowwise.categories(rows)
    _report(sel, pl.DataFrame({"c": list(cats), "len": list(cats.values())}), out)


LOAD = """
import sys, tempfile, time
kind, path = sys.argv[1], sys.argv[2]
import datasets
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test kit: tests/kit
from kit import rowwise  # noqa: E402
from vlmr1.shards import load
datasets.disable_progress_bars()
with tempfile.TemporaryDirectory() as cache:
    t0 = time.perf_counter()
    if kind == "rowwise":
        ds = rowwise.load(path)
    elif kind == "columnar":
        ds = load(path)
    else:
        ds = datasets.load_dataset("parquet", data_files=path, split="train", cache_dir=cache)
    print(time.perf_counter() - t0, len(ds))
"""


def _fresh(kind: str, path: Path) -> float:
    """Seconds one load took inside a fresh process (imports and start-up not counted)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", LOAD, kind, str(path)], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return float(done.stdout.split()[-2])


def _peer_columns(folder: Path) -> dict:
    import pyarrow.parquet as pq

    return pq.ParquetDataset(sorted(str(p) for p in folder.glob("shard-*.parquet"))).read().to_pydict()


def part1(rows: int, rounds: int, console: Console) -> None:
    import datasets

    recipe = load_recipe("none")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db = scale.build(tmp / "c.duckdb", rows, recipe)
        sel = select(db, recipe, scale.SCORER)
        old_rows, _ = rowwise.select(db, recipe, scale.SCORER)
        write_shards(sel, db, tmp / "ref")
        columns = _peer_columns(tmp / "ref")
        ways = {
            "select": {
                "row-wise (before)": lambda r: rowwise.select(db, recipe, scale.SCORER),
                "columnar": lambda r: select(db, recipe, scale.SCORER),
            },
            "write": {
                "row-wise (before)": lambda r: _old_write(sel, old_rows, db, tmp / f"old-{r}"),
                "columnar": lambda r: write_shards(sel, db, tmp / f"new-{r}"),
                "datasets from_dict + to_parquet": lambda r: datasets.Dataset.from_dict(columns).to_parquet(
                    str(tmp / f"peer-{r}.parquet")
                ),
            },
            "load": {  # each in a fresh process, as a training job loads its shards once, at start
                "row-wise (before)": lambda r: _fresh("rowwise", tmp / "ref"),
                "columnar": lambda r: _fresh("columnar", tmp / "ref"),
                "datasets load_dataset parquet": lambda r: _fresh("datasets", tmp / f"peer-{r}.parquet"),
            },
        }
        times = {(step, way): [] for step, w in ways.items() for way in w}
        for r in range(-1, rounds):  # round -1 warms every way up (imports, allocator) and is not counted
            for step, w in ways.items():
                names = list(w)
                for way in names[r % len(names) :] + names[: r % len(names)]:  # rotate who goes first
                    seconds = w[way](r) if step == "load" else _timed(w[way], r)  # a load reports its own time
                    if r >= 0:
                        times[step, way].append(seconds)
            console.print(f"round {r + 1}/{rounds} done" if r >= 0 else "warm-up done")
    table = Table(
        "step",
        "way",
        "median s",
        "rows/s",
        "vs before (median)",
        "spread (min-max)",
        "vs datasets (median)",
        title=f"{rows:,} scored samples, {rounds} rounds, rotating order",
    )
    for step, w in ways.items():
        base = times[step, "row-wise (before)"]
        peer = next((times[step, n] for n in w if n.startswith("datasets")), None)
        for way in w:
            t = times[step, way]
            ratios = [b / x for b, x in zip(base, t)]
            vs_peer = f"{statistics.median(p / x for p, x in zip(peer, t)):.2f}x" if peer else ""
            table.add_row(
                step,
                way,
                f"{statistics.median(t):.2f}",
                f"{rows / statistics.median(t):,.0f}",
                f"{statistics.median(ratios):.2f}x",
                f"{min(ratios):.2f}x-{max(ratios):.2f}x",
                vs_peer,
            )
    console.print(table)


# Peak RSS from VmHWM: ru_maxrss would carry over the parent's peak across exec (Linux keeps it in the signal
# struct), and the parent held part 1's data.
E2E = """
import re, sys, time
from pathlib import Path
from curation.quality.recipe import load_recipe
from curation.selection.select import select
from curation.shards.write import write_shards
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test kit: tests/kit
from kit import scale  # noqa: E402
db, out = Path(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
sel = select(db, load_recipe("none"), scale.SCORER)
t1 = time.perf_counter()
write_shards(sel, db, out)
t2 = time.perf_counter()
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(len(sel), t1 - t0, t2 - t1, int(hwm) * 1024)
"""


def part2(n: int, console: Console) -> None:
    recipe = load_recipe("none")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        db = scale.build(tmp / "c.duckdb", n, recipe)
        built = time.perf_counter() - t0
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", E2E, str(db), str(tmp / "shards")], capture_output=True, text=True, env=env
        )
        wall = time.perf_counter() - t0
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        selected, select_s, write_s, peak = done.stdout.split()[-4:]
        size = sum(p.stat().st_size for p in (tmp / "shards").glob("shard-*.parquet"))
    table = Table("what", "value", title=f"{n:,} scored samples in a catalog: select + write_shards, one process")
    table.add_row("catalog built (not timed below)", f"{built:.1f} s")
    table.add_row("selected rows", f"{int(selected):,}")
    table.add_row("select", f"{float(select_s):.1f} s")
    table.add_row("write_shards", f"{float(write_s):.1f} s ({size / 1e6:,.0f} MB of parquet)")
    table.add_row("process wall (with start-up and imports)", f"{wall:.1f} s")
    table.add_row("peak RSS", f"{int(peak) / 1e9:.2f} GB")
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="0: skip part 1")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--e2e", type=int, default=10_000_000, help="0: skip part 2")
    args = ap.parse_args()
    console = Console(width=150)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()
    if args.rows:
        part1(args.rows, args.rounds, console)
    if args.e2e:
        part2(args.e2e, console)


if __name__ == "__main__":
    main()
