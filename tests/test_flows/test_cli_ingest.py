"""`vlmr1 ingest coco|refcoco|d3|jsonl`: summary table per file; an unreadable file is reported and the others go
in."""

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

from curation import catalog
from curation.demo.fixtures import make_d3, make_refcoco, make_vlmr1_jsonl

VLMR1 = str(Path(sys.executable).parent / "vlmr1")
ENV = {**os.environ, "COLUMNS": "400"}  # one table row per line


def _run(*args):
    return subprocess.run([VLMR1, "ingest", *map(str, args)], capture_output=True, text=True, timeout=180, env=ENV)


def test_all_formats_through_the_cli(tmp_path):
    db = tmp_path / "c.duckdb"
    refs = make_refcoco(tmp_path / "refer")
    evil = make_refcoco(tmp_path / "evil", dataset="refcocog", split_by="umd")
    evil.write_bytes(pickle.dumps([{"x": os.system}], protocol=2))  # asks for posix.system
    out = _run("refcoco", refs, evil, "--catalog", db, "--images", tmp_path / "refer" / "train2014")
    assert out.returncode == 1, out.stdout + out.stderr  # one file failed, the other is in
    assert "new" in out.stdout and "failed" in out.stdout
    why = out.stderr.splitlines()[0]  # whole, on a line of its own (it was wrapped in a table cell)
    assert why.startswith(f"{evil}:") and "refused" in why and "system" in why
    d3 = make_d3(tmp_path / "d3")
    out = _run("d3", d3, "--catalog", db, "--images", tmp_path / "d3" / "d3_images")
    assert out.returncode == 0, out.stderr
    assert re.search(r"unknown image id\s+│\s+1 ", out.stdout), out.stdout  # the report's rejects by reason
    jsonl = make_vlmr1_jsonl(tmp_path / "jl")
    out = _run("jsonl", jsonl, "--catalog", db, "--images", tmp_path / "jl" / "images")
    assert out.returncode == 0, out.stderr
    assert all(re.search(rf"{what}\s+│\s+1 ", out.stdout) for what in ("image too large", "image missing")), out.stdout
    with catalog.connect(db) as con:
        kinds = dict(con.execute("SELECT kind, n_samples FROM sources").fetchall())
    assert set(kinds) == {"refcoco", "d3", "jsonl"} and all(n > 0 for n in kinds.values())
