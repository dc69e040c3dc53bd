"""Prefect flows: ``curate-and-train`` (ingest -> quality -> difficulty -> shards -> train -> evaluate) and
``ablation``.

Tasks are thin wrappers over library functions and pass paths and small
summaries, never connections or frames. Each task's cache key is the content
it depends on (file hashes, recipe hash, scorer key, manifest and config
hashes), so an unchanged stage is skipped by Prefect; the library functions
are idempotent underneath as well (ingest skips known files, scoring skips
scored samples, shards are deterministic). A run whose sources are all
unchanged since the last completed run stops after hashing and says
"no new data": that is what makes the nightly deployment cheap.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Literal, Optional

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field


class SourceSpec(BaseModel):
    kind: Literal["coco", "refcoco", "d3", "jsonl"]
    path: str
    images: list[str] = Field(default_factory=list)
    options: dict = Field(default_factory=dict)


class ScorerParams(BaseModel):
    model: str
    engine: Literal["hf", "vllm", "openai"] = "hf"
    k: int = 4
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    batch_size: int = 8
    family: Optional[str] = None
    base_url: Optional[str] = None


class PipelineParams(BaseModel):
    catalog: str
    output: str
    sources: list[SourceSpec]
    recipe: str = "default"
    scorer: Optional[ScorerParams] = None
    train_config: Optional[str] = None
    nprocs: int = 1
    evaluate: bool = True
    on_new_data: Literal["restart", "continue"] = "restart"


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _by_key(context, parameters) -> str:
    return f"{context.task.name}-{parameters['key']}"


def _stage(name: str, t0: float, **facts) -> dict:
    return {"stage": name, "seconds": round(time.perf_counter() - t0, 3), **facts}


@task(name="ingest", retries=1, retry_delay_seconds=2)
def ingest_task(catalog: str, source: dict) -> dict:
    from curation.images import ImageCheck
    from curation.ingest import ingest_coco, ingest_d3, ingest_jsonl, ingest_refcoco

    t0 = time.perf_counter()
    s = SourceSpec(**source)
    fn = {"coco": ingest_coco, "refcoco": ingest_refcoco, "d3": ingest_d3, "jsonl": ingest_jsonl}[s.kind]
    summary = fn(catalog, s.path, images=ImageCheck([Path(r) for r in s.images]) if s.images else None, **s.options)
    return _stage(
        "ingest",
        t0,
        file=s.path,
        skipped=summary.skipped,
        samples=summary.counts.get("samples", 0),
        rejects=summary.counts.get("rejects", 0),
        rejects_by_reason=summary.rejects_by_reason,
    )


@task(name="quality", cache_key_fn=_by_key, persist_result=True)
def quality_task(catalog: str, recipe: str, key: str) -> dict:
    from curation.quality.apply import evaluate_recipe
    from curation.quality.recipe import load_recipe
    from curation.quality.report import write_report

    t0 = time.perf_counter()
    r = evaluate_recipe(catalog, load_recipe(recipe))
    md, png = write_report(r, Path(catalog).parent / "reports" / "quality" / f"{r.recipe.name}-{r.recipe_hash}")
    return _stage(
        "quality",
        t0,
        recipe_hash=r.recipe_hash,
        samples_in=r.total,
        kept=r.kept,
        report=str(md),
        plot=str(png),
        funnel=[
            {"rule": f.rule, "action": f.action, "flagged": f.flagged, "unique": f.unique, "kept_after": f.kept_after}
            for f in r.funnel
        ],
    )


@task(name="score", cache_key_fn=_by_key, persist_result=True, retries=1, retry_delay_seconds=5)
def score_task(catalog: str, recipe: str, scorer: dict, key: str) -> dict:
    from curation.difficulty import band_counts, score_recipe, write_report
    from curation.quality.recipe import load_recipe
    from vlmr1.families import get_family
    from vlmr1.rollout import Sampling, make_engine

    t0 = time.perf_counter()
    p = ScorerParams(**scorer)
    options: dict = {}
    if p.engine == "hf":
        options["batch_size"] = p.batch_size
    if p.family:
        options["family"] = get_family(p.family) if p.engine != "openai" else p.family
    if p.engine == "openai" and p.base_url:
        options["base_url"] = p.base_url
    engine = make_engine(p.engine, p.model, **options)
    s = score_recipe(
        catalog,
        load_recipe(recipe),
        engine,
        sampling=Sampling(
            n=p.k,
            temperature=p.temperature,
            top_p=p.top_p,
            top_k=p.top_k,
            max_new_tokens=p.max_new_tokens,
            seed=p.seed,
        ),
    )
    md, png = write_report(catalog, s.scorer_key, Path(catalog).parent / "reports" / "difficulty" / s.scorer_key)
    return _stage(
        "score",
        t0,
        scorer_key=s.scorer_key,
        candidates=s.candidates,
        scored_now=s.scored_now,
        already_scored=s.already_scored,
        completions=s.completions,
        outside_generate_share=round(s.outside_generate_share, 3),
        report=str(md),
        plot=str(png),
        bands=[list(map(str, row)) for row in band_counts(catalog, s.scorer_key)],
    )


@task(name="shard", cache_key_fn=_by_key, persist_result=True)
def shard_task(catalog: str, recipe: str, scorer_key: Optional[str], out: str, pool: str, key: str) -> dict:
    from curation.quality.recipe import load_recipe
    from curation.selection import select
    from curation.shards import write_shards

    t0 = time.perf_counter()
    sel = select(catalog, load_recipe(recipe), scorer_key, pool=pool)
    manifest = write_shards(sel, catalog, Path(out))
    m = json.loads(manifest.read_text())
    return _stage(
        "shard",
        t0,
        manifest=str(manifest),
        rows=m["counts"]["rows"],
        shards=len(m["shards"]),
        funnel=m["funnel"],
        manifest_sha256=hashlib.sha256(manifest.read_bytes()).hexdigest(),
    )


@task(name="train", cache_key_fn=_by_key, persist_result=True)
def train_task(config: str, manifest: str, output: str, nprocs: int, key: str) -> dict:
    from training.launch import LaunchSpec, run

    t0 = time.perf_counter()
    logger = get_run_logger()
    r = run(
        LaunchSpec(config, manifest, output, nprocs=nprocs),
        on_line=lambda line: logger.info(line) if "VLMR1" in line or "Error" in line else None,
    )
    if r.returncode:
        raise RuntimeError(f"training failed (exit {r.returncode}): {r.last_error}; log {r.log}")
    curve = _reward_curve(Path(r.result["reward_log"])) if r.result.get("reward_log") else []
    return _stage(
        "train",
        t0,
        global_step=r.result["global_step"],
        final=r.result.get("final"),
        reward_log=r.result.get("reward_log"),
        log=r.log,
        curve=curve,
        warnings=r.result.get("warnings", []),
    )


def _reward_curve(path: Path) -> list[dict]:
    import duckdb

    rows = (
        duckdb.connect()
        .execute(
            "SELECT step, avg(reward_mean), avg(reward_std), count(*) FROM read_parquet(?) GROUP BY step ORDER "
            "BY step",
            [str(path)],
        )
        .fetchall()
    )
    return [{"step": s, "reward_mean": round(m, 4), "reward_std": round(sd, 4), "samples": n} for s, m, sd, n in rows]


@task(name="evaluate", cache_key_fn=_by_key, persist_result=True)
def eval_task(checkpoint: str, shards: str, catalog: str, run: str, key: str) -> dict:
    from curation.evaluations import record
    from training.evaluate import evaluate_model, rows_from_shards, write_results
    from vlmr1.rollout import make_engine

    t0 = time.perf_counter()
    results = evaluate_model(make_engine("hf", checkpoint), rows_from_shards(shards), max_new_tokens=48)
    path = write_results(results, checkpoint, Path(shards).name)
    record(catalog, path, run=run)
    return _stage("evaluate", t0, results=str(path), metrics=results["metrics"])


def _snapshot(catalog: str) -> str:
    from curation.catalog import snapshot

    return snapshot(catalog)["sources_sha256"]


def _file_key(path: str) -> str:
    from vlmr1.hashing import sha256_file

    return sha256_file(path) if Path(path).exists() else "missing"


def _artifacts(stages: list[dict], name: str) -> None:
    """Stage summaries, funnel, bands, training curve and evaluation tables, visible in the Prefect UI."""
    create_table_artifact(
        key=f"{name}-stages",
        table=[{k: v for k, v in s.items() if not isinstance(v, (list, dict))} for s in stages],
        description="stage summaries: counts in/out, rejects, seconds, skipped",
    )
    for s in stages:
        if s["stage"] == "quality":
            create_table_artifact(
                key=f"{name}-quality-funnel",
                table=s["funnel"],
                description=f"quality funnel ({s['recipe_hash']}): {s['report']}",
            )
        if s["stage"] == "score":
            create_table_artifact(
                key=f"{name}-difficulty",
                table=[dict(zip(["source", "task", "band", "samples", "suspect"], b)) for b in s["bands"]],
                description=f"difficulty bands, scorer {s['scorer_key']}; histogram: {s['plot']}",
            )
        if s["stage"] == "train" and s.get("curve"):
            create_table_artifact(
                key=f"{name}-training-curve", table=s["curve"], description="mean reward per step (reward log)"
            )
        if s["stage"] == "evaluate":
            create_table_artifact(
                key=f"{name}-evaluation",
                table=[{"split": k, **v} for k, v in s["metrics"].items()],
                description=f"evaluation: {s['results']}",
            )


@flow(name="curate-and-train", log_prints=True)
def curate_and_train(
    params: Optional[PipelineParams] = None, demo: bool = False, demo_output: str = "demo-out/flow"
) -> dict:
    """Ingest -> probe -> quality -> difficulty -> selection -> shards -> train -> evaluate. Stops early when no
    source changed."""
    logger = get_run_logger()
    if params is None:
        if not demo:
            raise ValueError("give params, or demo=true")
        params = demo_params(Path(demo_output))
    out = Path(params.output)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "last_run.json"
    source_keys = {s.path: _file_key(s.path) for s in params.sources}
    run_key = _key(source_keys, params.model_dump(mode="json"))
    if state_path.exists() and json.loads(state_path.read_text()).get("run_key") == run_key:
        logger.info("no new data: every source file is unchanged since the last completed run")
        create_markdown_artifact(
            key="curate-and-train-result", markdown="**no new data**: nothing ingested, scored or trained."
        )
        return {
            **json.loads(state_path.read_text()),
            "no_new_data": True,
            "stages": [{"stage": "check", "no_new_data": True}],
        }
    stages = [ingest_task(params.catalog, s.model_dump()) for s in params.sources]
    snapshot = _snapshot(params.catalog)
    from curation.quality.recipe import load_recipe

    recipe_hash = load_recipe(params.recipe).hash
    stages.append(quality_task(params.catalog, params.recipe, key=_key(snapshot, recipe_hash)))
    scorer_key = None
    if params.scorer is not None:
        scored = score_task(
            params.catalog,
            params.recipe,
            params.scorer.model_dump(),
            key=_key(snapshot, recipe_hash, params.scorer.model_dump()),
        )
        stages.append(scored)
        scorer_key = scored["scorer_key"]
    shards = shard_task(
        params.catalog,
        params.recipe,
        scorer_key,
        str(out / "shards" / "train"),
        "train",
        key=_key(snapshot, recipe_hash, scorer_key, str(out)),
    )
    stages.append(shards)
    result = {"manifest": shards["manifest"], "run_key": run_key}
    if params.train_config:
        train_out = out / "train" / shards["manifest_sha256"][:12]
        config = _continued_config(params, state_path, out)
        trained = train_task(
            config,
            shards["manifest"],
            str(train_out),
            params.nprocs,
            key=_key(shards["manifest_sha256"], _file_key(config), params.nprocs, str(train_out)),
        )
        stages.append(trained)
        result["checkpoint"] = trained["final"]
        if params.evaluate:
            ev_shards = shard_task(
                params.catalog,
                params.recipe,
                None,
                str(out / "shards" / "eval"),
                "eval",
                key=_key(snapshot, recipe_hash, "eval", str(out)),
            )
            stages.append(ev_shards)
            evaluated = eval_task(
                trained["final"],
                str(Path(ev_shards["manifest"]).parent),
                params.catalog,
                "curate-and-train",
                key=_key(trained["final"], ev_shards["manifest_sha256"]),
            )
            stages.append(evaluated)
            result["evaluation"] = evaluated["results"]
    _artifacts(stages, "curate-and-train")
    result["stages"] = stages
    state_path.write_text(json.dumps({k: v for k, v in result.items() if k != "stages"}, indent=2))
    logger.info(
        f"shards: {result['manifest']}; checkpoint: {result.get('checkpoint')}; evaluation: {result.get('evaluation')}"
    )
    return result


def _continued_config(params: PipelineParams, state_path: Path, out: Path) -> str:
    """``on_new_data: continue``: train from the last run's final checkpoint instead of the base model."""
    if params.on_new_data != "continue" or not state_path.exists():
        return params.train_config
    previous = json.loads(state_path.read_text()).get("checkpoint")
    if not previous or not Path(previous).exists():
        return params.train_config
    import yaml

    cfg = yaml.safe_load(Path(params.train_config).read_text())
    cfg["model"] = previous
    path = out / "train-continued.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def demo_params(out: Path) -> PipelineParams:
    """Fixtures of all four formats and a tiny offline Qwen2.5-VL (warm-started), under ``out``: what `make demo` and
    the demo deployment run."""
    import yaml

    from curation.fixtures import make_coco, make_d3, make_refcoco, make_vlmr1_jsonl
    from vlmr1.tiny import build_tiny_vlm

    out = out.resolve()
    data = out / "data"
    if not (data / "ready").exists():
        make_coco(data / "coco")
        make_refcoco(data / "refer")
        make_d3(data / "d3")
        make_vlmr1_jsonl(data / "vlmr1")
        (data / "ready").write_text("fixtures written")
    model = out / "tiny-qwen2_5_vl"
    if not (model / "config.json").exists():
        build_tiny_vlm(model, "qwen2_5_vl", warm_start_steps=120)
    config = out / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": str(model),
                "num_generations": 4,
                "per_device_train_batch_size": 8,
                "max_completion_length": 40,
                "learning_rate": 0.002,
                "beta": 0.0,
                "max_steps": 2,
                "save_steps": 1,
                "seed": 3,
                "deepspeed": "zero2",
                "use_cpu": True,
            }
        )
    )
    return PipelineParams(
        catalog=str(out / "catalog.duckdb"),
        output=str(out / "run"),
        sources=[
            SourceSpec(
                kind="coco",
                path=str(data / "coco" / "annotations" / "instances_train2017.json"),
                images=[str(data / "coco")],
            ),
            SourceSpec(
                kind="refcoco",
                path=str(data / "refer" / "refcoco" / "refs(unc).p"),
                images=[str(data / "refer" / "train2014")],
            ),
            SourceSpec(
                kind="d3",
                path=str(data / "d3" / "d3_json" / "d3_full_annotations.json"),
                images=[str(data / "d3" / "d3_images")],
            ),
            SourceSpec(
                kind="jsonl", path=str(data / "vlmr1" / "vlmr1_rec_ovd.jsonl"), images=[str(data / "vlmr1" / "images")]
            ),
        ],
        recipe="default",
        scorer=ScorerParams(model=str(model), k=4, max_new_tokens=40),
        train_config=str(config),
    )


class AblationParams(BaseModel):
    catalog: str
    output: str
    recipes: list[str]
    scorer_key: Optional[str] = None
    train_config: str
    nprocs: int = 1


@task(name="select-equal-size", cache_key_fn=_by_key, persist_result=True)
def equal_pools_task(catalog: str, recipes: list[str], scorer_key: Optional[str], out: str, key: str) -> list[dict]:
    from curation.quality.recipe import load_recipe
    from curation.selection import equal_size, select
    from curation.shards import write_shards

    t0 = time.perf_counter()
    pools = equal_size([select(catalog, load_recipe(r), scorer_key) for r in recipes])
    result = []
    for sel in pools:
        manifest = write_shards(sel, catalog, Path(out) / sel.recipe.name)
        result.append(
            _stage(
                "shard",
                t0,
                recipe=sel.recipe.name,
                manifest=str(manifest),
                rows=len(sel.rows),
                manifest_sha256=hashlib.sha256(manifest.read_bytes()).hexdigest(),
            )
        )
    return result


@flow(name="ablation", log_prints=True)
def ablation(
    params: Optional[AblationParams] = None, demo: bool = False, demo_output: str = "demo-out/ablation"
) -> dict:
    """Recipes over one catalog -> equal-size pools -> same training budget and seed -> evaluation -> one comparison
    table."""
    if params is None:
        if not demo:
            raise ValueError("give params, or demo=true")
        base = curate_and_train.fn(
            demo_params(Path(demo_output)).model_copy(update={"train_config": None})
        )  # catalog + scores only
        p = demo_params(Path(demo_output))
        params = AblationParams(
            catalog=p.catalog,
            output=str(Path(demo_output).resolve() / "ablation"),
            recipes=["none", "default"],
            train_config=p.train_config,
            scorer_key=next((s["scorer_key"] for s in base.get("stages", []) if s["stage"] == "score"), None),
        )
    out = Path(params.output)
    snapshot = _snapshot(params.catalog)
    from curation.quality.recipe import load_recipe

    stages = [quality_task(params.catalog, r, key=_key(snapshot, load_recipe(r).hash)) for r in params.recipes]
    pools = equal_pools_task(
        params.catalog,
        params.recipes,
        params.scorer_key,
        str(out / "shards"),
        key=_key(snapshot, params.recipes, params.scorer_key, str(out)),
    )
    ev = shard_task(
        params.catalog, params.recipes[0], None, str(out / "eval"), "eval", key=_key(snapshot, "eval", str(out))
    )
    rows = []
    stages += list(pools) + [ev]
    for pool in pools:
        arm = out / "train" / pool["recipe"]
        trained = train_task(
            params.train_config,
            pool["manifest"],
            str(arm),
            params.nprocs,
            key=_key(pool["manifest_sha256"], _file_key(params.train_config), str(arm)),
        )
        evaluated = eval_task(
            trained["final"],
            str(Path(ev["manifest"]).parent),
            params.catalog,
            f"ablation:{pool['recipe']}",
            key=_key(trained["final"], ev["manifest_sha256"], pool["recipe"]),
        )
        stages += [trained, evaluated]
        for split, m in evaluated["metrics"].items():
            rows.append(
                {
                    "recipe": pool["recipe"],
                    "recipe_hash": load_recipe(pool["recipe"]).hash,
                    "pool_size": pool["rows"],
                    "split": split,
                    **{k: v for k, v in m.items() if k != "task"},
                }
            )
    md, png = _comparison_report(rows, out)
    create_table_artifact(
        key="ablation-comparison",
        table=rows,
        description=f"metric per recipe and split, equal pool sizes; {md}, {png}",
    )
    create_markdown_artifact(key="ablation-comparison-md", markdown=md.read_text())
    return {"comparison": rows, "report": str(md), "plot": str(png), "stages": stages}


def _comparison_report(rows: list[dict], out: Path) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    metrics = [k for k in ("acc@0.5", "mean_iou", "mAP", "AP50") if any(k in r for r in rows)]
    lines = [
        "# Ablation",
        "",
        "| recipe | pool size | split | " + " | ".join(metrics) + " |",
        "|---|---:|---|" + "---:|" * len(metrics),
    ]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['pool_size']} | {r['split']} | "
            + " | ".join(f"{r[m]:.4f}" if isinstance(r.get(m), float) else str(r.get(m, "")) for m in metrics)
            + " |"
        )
    md = out / "comparison.md"
    md.write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(8, 3.5))
    recipes = sorted({r["recipe"] for r in rows})
    splits = sorted({r["split"] for r in rows})
    metric = metrics[0] if metrics else None
    width = 0.8 / max(len(recipes), 1)
    for i, rec in enumerate(recipes):
        vals = [
            next((r.get(metric) or 0.0 for r in rows if r["recipe"] == rec and r["split"] == s), 0.0) for s in splits
        ]
        ax.bar([j + i * width for j in range(len(splits))], vals, width, label=rec)
    ax.set_xticks([j + width * (len(recipes) - 1) / 2 for j in range(len(splits))], splits, rotation=20, fontsize=7)
    ax.set_ylabel(metric or "")
    ax.legend()
    ax.set_title("ablation: same pool size, budget and seed")
    fig.tight_layout()
    png = out / "comparison.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return md, png
