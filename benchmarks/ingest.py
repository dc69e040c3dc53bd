"""COCO ingest vs ``pycocotools.COCO(path)`` load, same file, one run, side by side.

The file is a synthetic COCO at train2017 scale (118,287 images, 860,001
annotations, 80 categories, ~445 MB with polygon segmentations), generated
once by ``curation.demo.fixtures.make_coco_scale`` and cached. Each side runs in
a fresh subprocess so peak RSS is its own. Ours is the whole ingest: hash,
parse, validate, build OVD samples, write the DuckDB catalog, commit.
Target: ours <= 0.5x pycocotools' time and <= 4 GB peak.

    .venv/bin/python benchmarks/ingest.py [--path /tmp/vlmr1-bench/instances_train2017.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

CHILD = {
    "pycocotools": "from pycocotools.coco import COCO\nc = COCO(path)\nresult = {'images': len(c.imgs), "
    "'annotations': len(c.anns)}",
    "vlmr1 ingest": "from curation.ingest import ingest\ns = ingest('coco', db, path)\nresult = s.counts",
}
WRAP = """
import json, resource, sys, time
path, db = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
{body}
seconds = time.perf_counter() - t0
peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
print(json.dumps({{"seconds": seconds, "peak_gb": peak_gb, **result}}))
"""


def run(name: str, path: Path, db: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", WRAP.format(body=CHILD[name]), str(path), str(db)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--path", type=Path, default=Path(tempfile.gettempdir()) / "vlmr1-bench" / "instances_train2017.json"
    )
    args = ap.parse_args()
    console = Console()
    if not args.path.exists():
        from curation.demo.fixtures import make_coco_scale

        console.print(f"generating {args.path} (once, ~30 s)")
        make_coco_scale(args.path)
    with tempfile.TemporaryDirectory() as tmp:
        ref = run("pycocotools", args.path, Path(tmp) / "unused.duckdb")
        ours = run("vlmr1 ingest", args.path, Path(tmp) / "catalog.duckdb")
    size_mb = args.path.stat().st_size / 1e6
    table = Table("", "wall s", "peak RSS GB", "images", "annotations", title=f"COCO ingest, {size_mb:.0f} MB file")
    for name, r in (("pycocotools COCO() load", ref), ("vlmr1 ingest (parse+validate+samples+DuckDB commit)", ours)):
        table.add_row(name, f"{r['seconds']:.2f}", f"{r['peak_gb']:.2f}", str(r["images"]), str(r["annotations"]))
    table.add_row(
        "ratio ours / pycocotools",
        f"{ours['seconds'] / ref['seconds']:.2f}x",
        f"{ours['peak_gb'] / ref['peak_gb']:.2f}x",
        "",
        "",
    )
    console.print(table)
    assert (ours["images"], ours["annotations"]) == (ref["images"], ref["annotations"]), (
        "the two sides read different counts"
    )


if __name__ == "__main__":
    main()
