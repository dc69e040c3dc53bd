"""The catalog: one DuckDB file, the single source of truth (ARCHITECTURE.md, "Catalog").

DuckDB lets one process write a file at a time; ``connect`` waits a bounded
time for the lock and then fails with the pid that holds it. Pass the path
between tasks, never a connection. The schema is versioned: ``MIGRATIONS``
run in order, each in its own transaction, and the version is recorded.
"""

from __future__ import annotations

import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from vlmr1.hashing import content_hash

_PID = re.compile(r"PID (\d+)")


class CatalogError(ValueError):
    """The catalog file cannot be used (newer schema): the message says which file and why."""


class CatalogBusy(RuntimeError):
    """Another process holds the catalog's write lock."""


# Each entry: (version, statements). Never edit a released entry: append one.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE sources (
                file_id VARCHAR PRIMARY KEY,      -- sha256 of the file's bytes
                kind VARCHAR NOT NULL,            -- coco | refcoco | d3 | jsonl
                source VARCHAR NOT NULL,          -- sample source name, e.g. coco, refcocog
                path VARCHAR NOT NULL,
                size_bytes BIGINT NOT NULL,
                n_records BIGINT NOT NULL,
                n_samples BIGINT NOT NULL,
                n_rejects BIGINT NOT NULL,
                options JSON,
                ingested_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            """CREATE TABLE images (
                file_id VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                image_id BIGINT NOT NULL,         -- id in the source file
                image_key VARCHAR NOT NULL,       -- path relative to an image root
                width INTEGER NOT NULL,
                height INTEGER NOT NULL,
                PRIMARY KEY (file_id, image_id)
            )""",
            """CREATE TABLE annotations (
                file_id VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                ann_id BIGINT NOT NULL,
                image_id BIGINT NOT NULL,
                category_id BIGINT NOT NULL,
                category VARCHAR NOT NULL,
                x1 DOUBLE NOT NULL, y1 DOUBLE NOT NULL, x2 DOUBLE NOT NULL, y2 DOUBLE NOT NULL,
                area DOUBLE,
                iscrowd BOOLEAN NOT NULL,
                PRIMARY KEY (file_id, ann_id)
            )""",
            """CREATE TABLE samples (
                sample_id VARCHAR PRIMARY KEY,
                file_id VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                split VARCHAR NOT NULL,
                task VARCHAR NOT NULL,
                image_key VARCHAR NOT NULL,
                width INTEGER NOT NULL,
                height INTEGER NOT NULL,
                problem VARCHAR NOT NULL,
                problem_raw VARCHAR,
                solution JSON NOT NULL,
                image_id BIGINT,
                ann_id BIGINT,
                ref_id BIGINT,
                sent_id BIGINT,
                category_ids BIGINT[],
                source_sha256 VARCHAR
            )""",
            """CREATE TABLE rejects (
                file_id VARCHAR NOT NULL,
                path VARCHAR NOT NULL,
                section VARCHAR NOT NULL,         -- images | annotations | categories | file ...
                record_index BIGINT,              -- position in that section, NULL for the whole file
                record_id VARCHAR,
                reason VARCHAR NOT NULL
            )""",
        ],
    ),
    (
        2,
        [
            """CREATE TABLE image_probes (        -- a cache of facts about image files, keyed by path
                path VARCHAR PRIMARY KEY,         -- as resolved against an image root
                size_bytes BIGINT,                -- with mtime_ns: the cache key (a changed file is probed again)
                mtime_ns BIGINT,
                width INTEGER, height INTEGER, format VARCHAR,
                sha256 VARCHAR,                   -- of the bytes: exact duplicates
                phash UBIGINT,                    -- 64-bit pHash: near duplicates, bit_count(xor(a, b))
                error VARCHAR,                    -- NULL when usable; else "what: detail"
                verified BOOLEAN NOT NULL,        -- fully decoded, not just the header
                max_pixels BIGINT NOT NULL,
                probed_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            # sources.file_id became the identity of (bytes, companions, kind, options); the bytes' own hash:
            "ALTER TABLE sources ADD COLUMN content_sha256 VARCHAR",
            # an evaluation-only pool (D3) must never reach a training shard
            "ALTER TABLE samples ADD COLUMN eval_only BOOLEAN NOT NULL DEFAULT false",
            # source facts that have no column of their own, e.g. {"absence": true, "group_id": 3} for D3
            "ALTER TABLE samples ADD COLUMN attributes JSON",
            # the image file the sample was checked against (NULL when ingested without image roots): joins
            # image_probes
            "ALTER TABLE samples ADD COLUMN image_path VARCHAR",
            """CREATE TABLE quality_flags (       -- what each recipe's rules said about each sample
                sample_id VARCHAR NOT NULL,
                rule VARCHAR NOT NULL,
                recipe_hash VARCHAR NOT NULL,
                action VARCHAR NOT NULL,          -- drop | flag
                PRIMARY KEY (recipe_hash, rule, sample_id)
            )""",
            """CREATE TABLE scorers
            (             -- a difficulty scorer: model, family/resize, template, sampling, rewards, k
                scorer_key VARCHAR PRIMARY KEY,
                spec JSON NOT NULL,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            """CREATE TABLE rollouts (            -- every completion a scorer generated, with its rewards
                scorer_key VARCHAR NOT NULL,
                sample_id VARCHAR NOT NULL,
                k_index INTEGER NOT NULL,
                completion VARCHAR NOT NULL,
                n_tokens INTEGER NOT NULL,
                reward DOUBLE NOT NULL,           -- the task's continuous reward (iou for rec, map for ovd)
                format DOUBLE NOT NULL,
                passed BOOLEAN NOT NULL,          -- reward >= the scorer's pass threshold
                PRIMARY KEY (scorer_key, sample_id, k_index)
            )""",
            """CREATE TABLE difficulty (          -- per sample and scorer: how often the base model solves it
                scorer_key VARCHAR NOT NULL,
                sample_id VARCHAR NOT NULL,
                k INTEGER NOT NULL,
                n_pass INTEGER NOT NULL,
                pass_rate DOUBLE NOT NULL,
                pass_at_1 DOUBLE NOT NULL,        -- unbiased estimators (Chen et al. 2021) from the k samples
                pass_at_k DOUBLE NOT NULL,
                reward_mean DOUBLE NOT NULL,
                reward_std DOUBLE NOT NULL,       -- 0: a GRPO group with no learning signal
                format_rate DOUBLE NOT NULL,
                band VARCHAR NOT NULL,            -- zero_std | all_fail | mixed | all_pass
                suspect_annotation BOOLEAN NOT NULL,  -- never passes although the answers are well formed
                PRIMARY KEY (scorer_key, sample_id)
            )""",
            """CREATE TABLE evaluations (         -- metrics of a checkpoint on an evaluation set, per split
                run VARCHAR NOT NULL,             -- who asked: a flow run, an ablation arm, or "cli"
                checkpoint VARCHAR NOT NULL,
                data VARCHAR NOT NULL,
                split VARCHAR NOT NULL,
                task VARCHAR NOT NULL,
                metric VARCHAR NOT NULL,
                value DOUBLE,
                n INTEGER NOT NULL,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            """CREATE TABLE recipes (             -- every recipe evaluated on this catalog, by hash
                recipe_hash VARCHAR PRIMARY KEY,
                name VARCHAR NOT NULL,
                content JSON NOT NULL,            -- canonical: resolved SQL of every rule, selection settings
                evaluated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
        ],
    ),
    (
        3,
        [
            # the catalog state a recipe's flags were computed on: readers of candidates refuse stale flags
            "ALTER TABLE recipes ADD COLUMN sources_sha256 VARCHAR",
        ],
    ),
    (
        4,
        [
            """CREATE TABLE runs (                -- a finished training run, merged by feedback.runs.record_run
                run_id VARCHAR PRIMARY KEY,       -- content hash of (checkpoint, manifest sha256)
                checkpoint VARCHAR NOT NULL,      -- the final model folder it produced
                output_dir VARCHAR NOT NULL,
                manifest VARCHAR NOT NULL,        -- the shards it trained on
                manifest_sha256 VARCHAR NOT NULL,
                recipe VARCHAR, recipe_hash VARCHAR, scorer_key VARCHAR,
                base_model VARCHAR NOT NULL,      -- what it started from
                parent_run VARCHAR,               -- the run that produced base_model, when it is ours
                global_step INTEGER,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            """CREATE TABLE training_rewards (    -- per run, step and sample: what training saw
                run_id VARCHAR NOT NULL,
                step INTEGER NOT NULL,
                sample_id VARCHAR NOT NULL,
                n INTEGER NOT NULL,               -- generations
                reward_mean DOUBLE NOT NULL,      -- the weighted reward over them
                reward_std DOUBLE NOT NULL,
                rewards JSON,                     -- each reward function's mean
                completion_tokens DOUBLE,         -- mean completion length
                PRIMARY KEY (run_id, step, sample_id)
            )""",
        ],
    ),
    (
        5,
        [
            """CREATE TABLE label_quality (       -- per sample and scorer: do the stored rollouts agree with the label
                scorer_key VARCHAR NOT NULL,
                sample_id VARCHAR NOT NULL,
                task VARCHAR NOT NULL,
                k INTEGER NOT NULL,               -- rollouts read
                parsed INTEGER NOT NULL,          -- of those, answers whose boxes parse in the scorer's dialect
                score DOUBLE,                     -- 0 (the answers agree with the label) .. 1; NULL: unknown
                agreement DOUBLE,                 -- REC: share of the k answers in the largest cluster
                support DOUBLE,                   -- REC: share of the k answers that hit the label (IoU >= 0.5)
                consensus_iou DOUBLE,             -- REC: the cluster's median box against the label
                other_iou DOUBLE,                 -- REC: the consensus against the image's best other object
                consensus DOUBLE[],               -- REC: x1, y1, x2, y2 in original pixels
                worst VARCHAR,                    -- OVD: the kind of its worst box (bad_location, overlooked, ...)
                version VARCHAR NOT NULL,         -- what computed it (curation.difficulty.label_quality.version)
                PRIMARY KEY (scorer_key, sample_id)
            )""",
            """CREATE TABLE label_quality_boxes (  -- OVD: per label box, and per object the answers see unlabelled
                scorer_key VARCHAR NOT NULL,
                sample_id VARCHAR NOT NULL,
                box_index INTEGER,                -- the label's place in the solution; NULL: an overlooked object
                label VARCHAR NOT NULL,
                x1 DOUBLE NOT NULL, y1 DOUBLE NOT NULL, x2 DOUBLE NOT NULL, y2 DOUBLE NOT NULL,
                kind VARCHAR NOT NULL,            -- ok | bad_location | never_predicted | overlooked
                hits DOUBLE NOT NULL,             -- share of answers that find it
                score DOUBLE NOT NULL
            )""",
        ],
    ),
    (
        6,
        [  # the posterior over a sample's pass rate (curation.difficulty.adaptive); NULL in rows scored before
            "ALTER TABLE difficulty ADD COLUMN post_mean DOUBLE",
            "ALTER TABLE difficulty ADD COLUMN post_low DOUBLE",  # its 90% interval
            "ALTER TABLE difficulty ADD COLUMN post_high DOUBLE",
            "ALTER TABLE difficulty ADD COLUMN p_no_signal DOUBLE",  # chance a GRPO group of signal_group has none
            "ALTER TABLE difficulty ADD COLUMN p_signal DOUBLE",  # P(the pass rate is where a group has signal)
            "ALTER TABLE difficulty ADD COLUMN signal_group INTEGER",
        ],
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


WAIT_ENV = "VLMR1_CATALOG_WAIT"  # seconds a command waits for a catalog another process holds (default 30)


def _open(path: Path, timeout: float | None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Connect, waiting while another process holds the file's lock: the wait is announced at once on stderr,
    naming the holder, and ends in ``CatalogBusy`` naming it too (the CLI's exit 3)."""
    timeout = float(os.environ.get(WAIT_ENV, 30.0)) if timeout is None else timeout
    deadline = time.monotonic() + timeout
    delay, holder = 0.05, None
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            con.execute("SET enable_progress_bar = false")
            return con
        except duckdb.IOException as exc:
            message = str(exc)
            if "lock" not in message.lower():
                raise
            if holder is None:  # looked up once: the message is announced now and repeated at the end
                holder = lock_holder(message)
                if timeout >= 1:
                    print(f"catalog {path} is in use by {holder}; waiting up to {timeout:g} s", file=sys.stderr)
            if time.monotonic() >= deadline:
                raise CatalogBusy(
                    f"catalog {path} is in use by {holder} (waited {timeout:g} s); close it there (a notebook: "
                    f"con.close()) or wait, then run this again"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def lock_holder(message: str) -> str:
    """ "pid N (its command)" from DuckDB's lock error, or "another process"."""
    m = _PID.search(message)
    if not m:
        return "another process"
    import psutil

    try:
        command = " ".join(psutil.Process(int(m.group(1))).cmdline())[:80]
    except (psutil.Error, ValueError):
        command = ""
    return f"pid {m.group(1)}" + (f" ({command})" if command else "")


@contextmanager
def read_only(path: str | Path, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection (nothing created or migrated), with the same wait and message as ``connect``."""
    con = _open(Path(path), timeout, read_only=True)
    try:
        yield con
    finally:
        con.close()


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; return the version found before."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP DEFAULT "
        "current_timestamp)"
    )
    current = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise CatalogError(
            f"catalog schema version {current} is newer than this code ({SCHEMA_VERSION}); upgrade vlmr1-curate"
        )
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        with transaction(con):
            for sql in statements:
                con.execute(sql)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
    return current


@contextmanager
def connect(
    path: str | Path, timeout: float | None = None, memory_limit: str | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open (creating and migrating if needed) the catalog; close it on exit. ``memory_limit`` caps DuckDB's
    buffers (sorts and joins spill to disk beyond it) where the caller holds large frames of its own. A catalog
    another process holds is waited for ``timeout`` seconds (default ``$VLMR1_CATALOG_WAIT``, else 30)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path, timeout)
    try:
        if memory_limit:
            con.execute(f"SET memory_limit = '{memory_limit}'")
        migrate(con)
        yield con
    finally:
        con.close()


def counts(path: str | Path) -> dict[str, int]:
    """Rows per table: what a summary or a test wants to see."""
    with connect(path) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        ]
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in sorted(tables)}


def sources_sha256(con: duckdb.DuckDBPyConnection) -> str:
    """The catalog's content as one hash: its source files' identities and the training runs merged into it (a
    changed, added or removed file, or a new run's rewards, changes it: quality flags that read training features
    must be recomputed), and the label quality computed from rollouts (rules on ``label_*`` features must see it).
    Without runs or label quality it is the hash of the sources alone, as before either existed."""
    ids = [r[0] for r in con.execute("SELECT file_id FROM sources ORDER BY file_id").fetchall()]
    runs = [f"run:{r[0]}" for r in con.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()]
    computed = con.execute("SELECT scorer_key, version, count(*) FROM label_quality GROUP BY ALL ORDER BY ALL")
    labels = [f"labels:{key}:{ver}:{n}" for key, ver, n in computed.fetchall()]
    return content_hash("\n".join(ids + runs + labels), full=True)


def snapshot(path: str | Path) -> dict:
    """What a catalog holds, as a hash of its source files' identities: shards record it, flows key their caches on
    it."""
    with connect(path) as con:
        n = con.execute("SELECT count(*) FROM sources").fetchone()[0]
        version = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        digest = sources_sha256(con)
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    snap = {"path": str(Path(path).resolve()), "schema_version": version, "sources": n, "sources_sha256": digest}
    return snap | ({"training_runs": runs} if runs else {})


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK on any exception (a KeyboardInterrupt included) and re-raise."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def frame(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None):
    """A query's result as a polars frame, read in Arrow batches (never the whole result twice in memory). A read
    left unfinished by ``fetchone`` is dropped first: DuckDB refuses new work on the connection while one is
    pending."""
    import polars as pl

    con.abort()
    reader = con.sql(query, params=params).to_arrow_reader(1 << 20)
    parts = [pl.from_arrow(batch) for batch in reader]
    return pl.concat(parts, rechunk=False) if parts else pl.from_arrow(reader.schema.empty_table())


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, table) -> Iterator[str]:
    """An Arrow table visible to SQL as ``name`` for the block's duration."""
    con.abort()  # a pending fetchone() result would make DuckDB refuse the registration
    con.register(name, table)
    try:
        yield name
    finally:
        con.unregister(name)


@contextmanager
def temp_tables(con: duckdb.DuckDBPyConnection, *names: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """Scratch temp tables the block creates, dropped when it ends (also on error)."""
    try:
        yield con
    finally:
        for name in names:
            con.execute(f"DROP TABLE IF EXISTS {name}")
