"""Difficulty by pass@k of the base model, with exactly the prompt, resize and reward training will use.

A ``ScorerSpec`` fixes everything that changes the outcome: model identity,
family (frame, min/max pixels), prompt template, sampling, the reward per
task with its version, k and the pass threshold. Its hash is the scorer key;
a sample scored under a key is never scored again.

Work goes in partitions: a fixed chunking of the recipe's candidates in
sample-id order, each with its own seed. A partition's rollouts are written
to a parquet file first, then merged (rollouts + difficulty) in one catalog
transaction, then the file is removed. A run killed anywhere resumes with
exactly the unscored samples: leftover files are merged first, torn files
are never renamed into place, and the partitions (and so the seeds) are the
same as an uninterrupted run's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation import catalog
from curation.difficulty.adaptive import AdaptiveConfig, fit_prior, next_round, posterior
from curation.difficulty.config import ScorerConfig
from curation.quality.recipe import Recipe
from curation.selection.select import candidates as training_candidates
from vlmr1.prompts import build_messages, get_template
from vlmr1.report import StageReport
from vlmr1.rewards import DEFAULT_DIALECT, REGISTRY, RewardBatch, score
from vlmr1.rollout.base import Engine, Request, Sampling

TASK_REWARD = {"rec": "iou", "ovd": "map"}
ROLLOUT_SCHEMA = pa.schema(
    [
        ("scorer_key", pa.string()),
        ("sample_id", pa.string()),
        ("k_index", pa.int32()),
        ("completion", pa.string()),
        ("n_tokens", pa.int32()),
        ("reward", pa.float64()),
        ("format", pa.float64()),
        ("passed", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class ScorerSpec:
    """A scorer's identity: its config's outcome-changing knobs with the model's and family's identity."""

    model: dict  # engine.describe(): path and content hash (or server and model name)
    family: dict  # Family.key(): frame and resize
    config: ScorerConfig = field(default_factory=ScorerConfig)
    rewards: dict = field(default_factory=lambda: dict(TASK_REWARD))

    @property
    def template(self) -> str:
        return self.config.template

    @property
    def sampling(self) -> Sampling:
        return self.config.sampling

    @property
    def threshold(self) -> float:
        return self.config.threshold

    @property
    def dialect(self) -> str:
        return self.config.dialect

    def canonical(self) -> dict:
        model = {k: v for k, v in self.model.items() if k != "engine"}  # hf and vllm on the same weights share scores
        # the default dialect is left out, so keys from before dialects existed still name the same scores
        dialect = {} if self.dialect == DEFAULT_DIALECT else {"dialect": self.dialect}
        adaptive = self.config.adaptive  # left out when off, so fixed-k keys name the same scores as before
        rounds = {} if adaptive is None else {"adaptive": adaptive.model_dump()}
        group = {} if self.config.group == 8 else {"group": self.config.group}
        return (
            dialect
            | rounds
            | group
            | {
                "model": model,
                "family": self.family,
                "template": get_template(self.template).key(),
                "sampling": self.sampling.to_dict(),
                "threshold": self.threshold,
                "rewards": {t: f"{n}@{REGISTRY[n].version}" for t, n in sorted(self.rewards.items())},
            }
        )

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class ScoreSummary:
    scorer_key: str
    candidates: int
    already_scored: int
    scored_now: int
    merged_leftovers: int
    wall_seconds: float
    generate_seconds: float
    tokens: int
    completions: int
    backend: str = "this process"  # or "ray: N actors, CLUSTER"
    partitions: int = 0  # planned by this run
    partitions_merged: int = 0  # of those, merged into the catalog so far (what an interrupted run kept)
    k_max: int = 0  # rollouts a sample may get
    adaptive: AdaptiveConfig | None = None

    @property
    def outside_generate_share(self) -> float:
        return (
            0.0 if self.wall_seconds <= 0 else max(0.0, self.wall_seconds - self.generate_seconds) / self.wall_seconds
        )

    def rollouts_line(self) -> str:
        """How the rollouts went: fixed k, or what adaptive scoring spent of what it could (and of its budget)."""
        if not self.scored_now:
            return "none generated"
        per = self.completions / self.scored_now
        if self.adaptive is None:
            return f"fixed k = {self.k_max}"
        budget = "" if self.adaptive.budget is None else f"; budget {self.adaptive.budget:g} per sample"
        return f"adaptive: {per:.2f} per sample of at most {self.k_max} ({per / self.k_max:.0%}){budget}"

    def report(self, catalog_path: str | Path) -> StageReport:
        """Counts, the band table of this scorer, and where the time went."""
        names = BAND_COLUMNS
        bands = [dict(zip(names, row, strict=True)) for row in band_counts(catalog_path, self.scorer_key)]
        counts = {
            "scorer": self.scorer_key,
            "candidates": self.candidates,
            "already scored": self.already_scored,
            "scored now": self.scored_now,
            "completions": self.completions,
            "rollouts": self.rollouts_line(),
            "tokens": self.tokens,
            "share outside generate": round(self.outside_generate_share, 3),
            "backend": self.backend,
        }
        timings = {"generate": self.generate_seconds, "rest": self.wall_seconds - self.generate_seconds}
        return StageReport(
            "score", f"difficulty, scorer {self.scorer_key}", counts, tables={"bands": bands}, timings=timings
        )


def pass_at(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _load_image(path: str | None, sample_id: str):
    from PIL import Image

    if not path:
        raise ValueError(
            f"sample {sample_id} has no image path: ingest its source with --images so scoring can read the image"
        )
    with Image.open(path) as img:
        return img.convert("RGB")


def _merge(con: duckdb.DuckDBPyConnection, part: Path, spec: ScorerSpec) -> int:
    """One transaction: a partition file's rollouts and the difficulty rows they imply. Idempotent."""
    key = spec.key
    with catalog.transaction(con):
        con.execute("CREATE OR REPLACE TEMP TABLE _part AS SELECT * FROM read_parquet(?)", [str(part)])
        con.execute(
            "DELETE FROM _part WHERE sample_id IN (SELECT sample_id FROM difficulty WHERE scorer_key = ?)", [key]
        )
        n = con.execute("SELECT count(DISTINCT sample_id) FROM _part").fetchone()[0]
        con.execute(
            "INSERT INTO rollouts SELECT scorer_key, sample_id, k_index, completion, n_tokens, reward, format, passed "
            "FROM _part"
        )
        per_sample = con.execute(
            "SELECT sample_id, count(*), count(*) FILTER (WHERE passed), avg(reward), "
            "coalesce(stddev_pop(reward), 0), avg(format), any_value(s.task) FROM _part JOIN samples s "
            "USING (sample_id) GROUP BY sample_id ORDER BY sample_id"
        ).fetchall()
        diff = [difficulty_row(key, *row[:6]) for row in per_sample]
        _add_posteriors(diff, [row[6] for row in per_sample], spec.config.group)
        if diff:
            with catalog.registered(con, "_diff", pa.Table.from_pylist(diff)):
                con.execute("INSERT INTO difficulty BY NAME SELECT * FROM _diff")
    return n


def _add_posteriors(rows: list[dict], tasks: list[str], group: int) -> None:
    """Each row's posterior over its pass rate (``adaptive``: the prior fitted to its partition's outcomes, per
    task): mean, 90% interval, and the chance a GRPO group of ``group`` gets no learning signal."""
    for task in set(tasks):
        mine = [r for r, t in zip(rows, tasks) if t == task]
        passes, rollouts = [r["n_pass"] for r in mine], [r["k"] for r in mine]
        post = posterior(fit_prior(passes, rollouts), passes, rollouts, group)
        low, high = post.interval(0.9)
        for r, m, lo, hi, none, sig in zip(mine, post.mean, low, high, post.p_no_signal, post.p_signal):
            r.update(post_mean=float(m), post_low=float(lo), post_high=float(hi), p_no_signal=float(none),
                     p_signal=float(sig), signal_group=group)  # fmt: skip


def difficulty_row(key: str, sample_id: str, k: int, c: int, mean: float, std: float, fmt: float) -> dict:
    """A sample's difficulty from its k rollouts (all of them: adaptive scoring's vary): c passed, reward
    mean/std, format rate."""
    band = "zero_std" if std <= 1e-12 else ("all_fail" if c == 0 else "all_pass" if c == k else "mixed")
    return {
        "scorer_key": key,
        "sample_id": sample_id,
        "k": k,
        "n_pass": c,
        "pass_rate": c / k,
        "pass_at_1": pass_at(k, c, 1),
        "pass_at_k": pass_at(k, c, k),
        "reward_mean": mean,
        "reward_std": std,
        "format_rate": fmt,
        "band": band,
        "suspect_annotation": c == 0 and fmt >= 0.75,
    }


def _write_partition(path: Path, rows: list[dict]) -> None:
    """Write then rename: a killed write leaves a .tmp file, never a torn partition."""
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=ROLLOUT_SCHEMA), tmp)
    os.replace(tmp, path)


def score_recipe(
    catalog_path: str | Path,
    recipe: Recipe,
    engine: Engine,
    config: ScorerConfig | None = None,
    *,
    limit: int | None = None,
    work_dir: str | Path | None = None,
    progress: Callable[[int, int, "ScoreSummary"], None] | None = None,
) -> ScoreSummary:
    """Score every training candidate of ``recipe`` not yet scored under this scorer with ``engine`` (built from
    ``config.engine`` by ``score_with``, or given); return what was done."""
    t_start = time.perf_counter()
    spec = ScorerSpec(engine.describe(), engine.family.key(), config or ScorerConfig())
    work, plan, summary = prepare_run(catalog_path, recipe, spec, limit, work_dir)
    todo_total = sum(len(chunk) for _, chunk in plan)
    gen0, tok0, comp0 = engine.stats.generate_seconds, engine.stats.tokens, engine.stats.completions

    def account() -> None:
        summary.wall_seconds = time.perf_counter() - t_start
        summary.generate_seconds = engine.stats.generate_seconds - gen0
        summary.tokens, summary.completions = engine.stats.tokens - tok0, engine.stats.completions - comp0

    def finish(p_index: int, chunk: list[dict], outputs) -> None:
        part = work / f"part-{p_index:06d}.parquet"
        _write_partition(part, _rollout_rows(chunk, outputs, engine.family, spec))
        merge_partition(catalog_path, part, spec)
        summary.scored_now += len(chunk)
        summary.partitions_merged += 1
        account()
        if progress:
            progress(summary.scored_now, todo_total, summary)

    _overlapped(plan, engine, spec, finish)
    account()
    return summary


def prepare_run(
    catalog_path: str | Path, recipe: Recipe, spec: ScorerSpec, limit: int | None, work_dir
) -> tuple[Path, list[tuple[int, list[dict]]], ScoreSummary]:
    """Register the scorer, merge a killed run's finished files, and plan the unscored candidates (local and Ray)."""
    catalog_path = Path(catalog_path)
    work = Path(work_dir or catalog_path.parent / "scoring") / spec.key
    with catalog.connect(catalog_path) as con:
        merged_leftovers = _resume(con, work, spec)
        candidates = training_candidates(con, recipe)
        scored = {
            r[0] for r in con.execute("SELECT sample_id FROM difficulty WHERE scorer_key = ?", [spec.key]).fetchall()
        }
    plan = _plan(candidates, scored, spec.config.partition_size, limit)
    ids = {r["sample_id"] for r in candidates}
    summary = ScoreSummary(spec.key, len(ids), len(scored & ids), 0, merged_leftovers, 0.0, 0.0, 0, 0)
    summary.partitions = len(plan)
    summary.k_max, summary.adaptive = spec.sampling.n, spec.config.adaptive
    return work, plan, summary


def partition_seed(spec: ScorerSpec, p_index: int) -> int:
    return spec.sampling.seed + 1_000_003 * p_index


def generate_partition(engine: Engine, spec: ScorerSpec, p_index: int, chunk: list[dict], requests) -> list[list]:
    """A partition's completions: all k at once, or (``adaptive``) in rounds until the rounds say stop. Completion j
    of sample i has the seed it has under fixed k either way, so an adaptive run's are a prefix of a fixed run's."""
    sampling = dataclasses.replace(spec.sampling, seed=partition_seed(spec, p_index))
    adaptive = spec.config.adaptive
    if adaptive is None:
        return engine.generate(requests, sampling)
    outs: list[list] = [[] for _ in chunk]
    passes = np.zeros(len(chunk), int)
    tasks = np.array([r["task"] for r in chunk])
    while True:
        more = np.zeros(len(chunk), int)
        for task in np.unique(tasks):  # the prior is the partition's, per task
            mine = np.flatnonzero(tasks == task)
            done = [len(outs[i]) for i in mine]
            more[mine] = next_round(passes[mine], done, adaptive, sampling.n, spec.config.group)
        if not more.any():
            return outs
        for count in np.unique(more[more > 0]):
            who = np.flatnonzero(more == count)
            asked = [dataclasses.replace(requests[i], seed=sampling.request_seed(int(i)) + len(outs[i])) for i in who]
            got = engine.generate(asked, dataclasses.replace(sampling, n=int(count)))
            passed = iter(row["passed"] for row in _rollout_rows([chunk[i] for i in who], got, engine.family, spec))
            for i, completions in zip(who, got):  # the rows come sample by sample, completions in order
                outs[i].extend(completions)
                passes[i] += sum(next(passed) for _ in completions)


def score_partition(engine: Engine, spec: ScorerSpec, p_index: int, chunk: list[dict], work: Path) -> Path:
    """One partition generated and written to its file, unmerged: a Ray actor's unit of work."""
    outputs = generate_partition(engine, spec, p_index, chunk, _requests(chunk, engine, spec))
    part = work / f"part-{p_index:06d}.parquet"
    _write_partition(part, _rollout_rows(chunk, outputs, engine.family, spec))
    return part


def merge_partition(catalog_path: str | Path, part: Path, spec: ScorerSpec) -> None:
    """A finished partition file into the catalog, then gone (idempotent: a file merged twice adds nothing)."""
    with catalog.connect(catalog_path) as con:
        _merge(con, part, spec)
    part.unlink()


def _resume(con: duckdb.DuckDBPyConnection, work: Path, spec: ScorerSpec) -> int:
    """Register the scorer and merge the partition files a killed run finished; return the samples merged."""
    work.mkdir(parents=True, exist_ok=True)
    for tmp in work.glob("*.tmp"):
        tmp.unlink()  # torn writes of a killed run
    con.execute(
        "INSERT INTO scorers (scorer_key, spec) SELECT ?, ? WHERE ? NOT IN (SELECT scorer_key FROM scorers)",
        [spec.key, json.dumps({**spec.canonical(), "engine": spec.model}, sort_keys=True), spec.key],
    )
    merged = 0
    for part in sorted(work.glob("part-*.parquet")):
        merged += _merge(con, part, spec)
        part.unlink()
    return merged


def _plan(candidates: list[dict], scored: set[str], size: int, limit: int | None) -> list[tuple[int, list[dict]]]:
    """(partition index, unscored rows) in candidate order, at most ``limit`` rows in all.

    A partition's index is its place among all candidates, so its seed does not depend on what is already done.
    """
    plan, budget = [], float("inf") if limit is None else limit
    for p_index in range(0, (len(candidates) + size - 1) // size):
        if budget <= 0:
            break
        part = candidates[p_index * size : (p_index + 1) * size]
        chunk = [r for r in part if r["sample_id"] not in scored][: int(min(budget, size))]
        if chunk:
            plan.append((p_index, chunk))
            budget -= len(chunk)
    return plan


def _overlapped(plan, engine: Engine, spec: ScorerSpec, finish: Callable) -> None:
    """Three stages overlap: partition p+1's images are read (and handed to the engine to preprocess) and
    partition p-1's rewards, parquet file and merge are done while partition p generates. Order and seeds are
    the plan's, so the result is the sequential one; a kill leaves at most finished files to merge."""
    with ThreadPoolExecutor(1, "score-read") as reader, ThreadPoolExecutor(1, "score-write") as writer:
        reading = reader.submit(_requests, plan[0][1], engine, spec) if plan else None
        writing = None
        for n, (p_index, chunk) in enumerate(plan):
            requests = reading.result()
            if n + 1 < len(plan):
                reading = reader.submit(_requests, plan[n + 1][1], engine, spec)
            outputs = generate_partition(engine, spec, p_index, chunk, requests)
            if writing is not None:
                writing.result()
            writing = writer.submit(finish, p_index, chunk, outputs)
        if writing is not None:
            writing.result()


def _requests(chunk: list[dict], engine: Engine, spec: ScorerSpec) -> list[Request]:
    """Read a partition's images and build its prompts; an engine that preprocesses (hf) may start on them now."""
    requests = [
        Request([_load_image(r["image_path"], r["sample_id"])], build_messages(r["task"], r["problem"], spec.template))
        for r in chunk
    ]
    prepare = getattr(engine, "prepare", None)
    if prepare is not None:
        prepare(requests)
    return requests


def _rollout_rows(chunk: list[dict], outputs, family, spec: ScorerSpec) -> list[dict]:
    """Rewards of every completion, with the reward functions training uses, as ``ROLLOUT_SCHEMA`` rows."""
    completions, solutions, widths, heights, tasks, owners = [], [], [], [], [], []
    for r, outs in zip(chunk, outputs):
        for j, c in enumerate(outs):
            completions.append(c.text)
            solutions.append(r["solution"])
            widths.append(r["width"])
            heights.append(r["height"])
            tasks.append(r["task"])
            owners.append((r["sample_id"], j, c.n_tokens))
    batch = RewardBatch.build(completions, solutions, widths, heights, tasks, family.frame(), None)
    fmt = score("format", batch, spec.dialect)
    reward = np.full(len(completions), np.nan)
    for task, name in spec.rewards.items():
        values = score(name, batch, spec.dialect)
        mask = np.array([t == task for t in tasks])
        reward[mask] = values[mask]
    reward = np.nan_to_num(reward, nan=0.0)
    return [
        {
            "scorer_key": spec.key,
            "sample_id": sid,
            "k_index": j,
            "completion": text,
            "n_tokens": n,
            "reward": float(rw),
            "format": float(f),
            "passed": bool(rw >= spec.threshold),
        }
        for (sid, j, n), text, rw, f in zip(owners, completions, reward, fmt)
    ]


BAND_COLUMNS = ("source", "task", "band", "samples", "suspect annotation", "rollouts per sample", "P(no signal)")


def band_counts(catalog_path: str | Path, scorer_key: str) -> list[tuple]:
    """``BAND_COLUMNS`` rows for a report: what adaptive scoring spent where, and how settled it left each band (the
    mean chance a GRPO group gets no signal)."""
    with catalog.connect(catalog_path) as con:
        return con.execute(
            """SELECT s.source, s.task, d.band, count(*), count(*) FILTER (WHERE d.suspect_annotation),
            round(avg(d.k), 2), round(avg(d.p_no_signal), 3)
            FROM difficulty d JOIN samples s USING (sample_id) WHERE d.scorer_key = ? GROUP BY ALL ORDER BY ALL""",
            [scorer_key],
        ).fetchall()


BAND_COLOURS = {"all_fail": "#c0504d", "zero_std": "#f0a35e", "mixed": "#4a7ab5", "all_pass": "#5a9e5a"}


def _pass_rate_panel(ax, name: str, values: list[tuple]) -> None:
    ax.hist([v[0] for v in values], bins=np.linspace(0, 1, 11), color="#4a7ab5")
    ax.set_title(f"{name} (n={len(values)})", fontsize=9)
    ax.set(xlabel="pass rate (share of its rollouts that pass)", ylabel="samples")
    ax.yaxis.get_major_locator().set_params(integer=True)


def _rollouts_panel(ax, values: list[tuple]) -> None:
    """Rollouts spent per sample, stacked by band (fixed k: one bar), and how settled: mean P(no signal)."""
    spent = [v[1] for v in values]
    bins = np.arange(min(spent), max(spent) + 2) - 0.5
    bands = [b for b in BAND_COLOURS if any(v[2] == b for v in values)]
    ax.hist([[v[1] for v in values if v[2] == b] for b in bands], bins=bins, stacked=True, label=bands,
            color=[BAND_COLOURS[b] for b in bands])  # fmt: skip
    settled = [v[3] for v in values if v[3] is not None]
    mean = f", mean P(no signal at G) {np.mean(settled):.2f}" if settled else ""
    ax.set_title(f"rollouts: {np.mean(spent):.1f} per sample{mean}", fontsize=8)
    ax.set(xlabel="rollouts spent on the sample", ylabel="samples")
    ax.legend(fontsize=7)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.yaxis.get_major_locator().set_params(integer=True)


def write_difficulty_report(catalog_path: str | Path, scorer_key: str, out_dir: Path) -> dict[str, str]:
    """Pass-rate histogram per source and task (PNG) and counts per band (markdown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with catalog.connect(catalog_path) as con:
        rows = con.execute(
            "SELECT s.source, s.task, d.pass_rate, d.k, d.band, d.p_no_signal FROM difficulty d JOIN samples s "
            "USING (sample_id) WHERE d.scorer_key = ?",
            [scorer_key],
        ).fetchall()
    groups: dict[str, list[tuple]] = {}
    for source, task, *values in rows:
        groups.setdefault(f"{source}/{task}", []).append(values)
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(len(groups), 1)
    fig, axes = plt.subplots(2, width, figsize=(3.6 * width, 6.6), squeeze=False)
    for column, (name, values) in enumerate(sorted(groups.items())):
        _pass_rate_panel(axes[0][column], name, values)
        _rollouts_panel(axes[1][column], values)
    fig.suptitle("difficulty: pass rate of the base model per sample, and the rollouts that found it")
    fig.text(0.99, 0.01, f"scorer {scorer_key}", ha="right", va="bottom", fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    png = out_dir / "pass_rate.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    lines = [
        f"# Difficulty: scorer {scorer_key}",
        "",
        "| " + " | ".join(BAND_COLUMNS) + " |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in band_counts(catalog_path, scorer_key)]
    md = out_dir / "difficulty.md"
    md.write_text("\n".join(lines) + "\n")
    return {"difficulty report": str(md), "difficulty plot": str(png)}


def latest_scorer(catalog_path: str | Path) -> str:
    """The scorer key registered last (``--scorer latest``)."""
    with catalog.connect(catalog_path) as con:
        found = con.execute("SELECT scorer_key FROM scorers ORDER BY created_at DESC LIMIT 1").fetchall()
    if not found:
        raise ValueError(f"--scorer latest: {catalog_path} has no scorer yet (run `vlmr1 score` first)")
    return found[0][0]
