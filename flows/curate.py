"""The ``curate-and-train`` flow: ingest -> quality -> difficulty -> selection + shards -> train -> evaluate.

Tasks pass typed references; each is cached on their content (``flows.caching``), and the library is
idempotent underneath (ingest skips known files, scoring skips scored samples, shards are deterministic). A run
whose sources are all unchanged since the last completed run stops after hashing ("no new data"): what makes
the nightly deployment cheap. Every training run is recorded in the catalog (``curation.feedback.runs``); with
``reprofile`` a round scores under the last checkpoint, lets the recipe drop what it mastered and continues from
it, and the trained policy counts as new: the next round re-profiles with it.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from curation.ray_cluster import RaySpec
from flows.params import CatalogRef, FileRef, ModelRef, PipelineParams, RecipeRef, demo_params
from flows.tasks import eval_task, ingest_task, quality_task, score_task, shard_task, train_task
from vlmr1.hashing import content_hash


@flow(name="curate-and-train", log_prints=True)
def curate_and_train(
    params: PipelineParams | None = None,
    demo: bool = False,
    demo_output: str = "demo-out/curate-and-train-demo",
    ray: RaySpec | None = None,
    reprofile: bool | None = None,
) -> dict:
    """Ingest -> probe -> quality -> difficulty -> selection -> shards -> train -> evaluate. Stops early when no
    source changed. ``ray`` (or ``params.ray``): image probing and scoring on Ray, inside their tasks.
    ``reprofile`` (or ``params.reprofile``): a retraining round under the last checkpoint."""
    logger = get_run_logger()
    if params is None:
        if not demo:
            raise ValueError("give params, or demo=true")
        logger.info(f"demo inputs in {demo_output}: fixtures and a tiny model (built once per folder)")
        params = demo_params(Path(demo_output), logger.info)
    if ray is not None:
        params = params.model_copy(update={"ray": ray})
    if reprofile is not None:
        params = params.model_copy(update={"reprofile": reprofile})
    if params.ray is not None and params.scorer is not None and params.scorer.ray is None:
        params = params.model_copy(update={"scorer": params.scorer.model_copy(update={"ray": params.ray})})
    out = Path(params.output)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "last_run.json"
    policy = _current_policy(params, state_path)
    run_key = content_hash(
        [{s.path: FileRef(path=s.path).content_key() for s in params.sources}, params.model_dump(mode="json"), policy],
        length=24,
    )
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
    catalog, recipe = CatalogRef(path=params.catalog), RecipeRef(spec=params.recipe)
    reports = [ingest_task(catalog, s, params.ray) for s in params.sources]
    reports.append(quality_task(catalog, recipe))
    scorer_key = None
    if params.scorer is not None:
        scorer = params.scorer
        if policy is not None:  # re-profile: difficulty under the model being trained, its own scorer key
            scorer = scorer.model_copy(update={"engine": scorer.engine.model_copy(update={"model": policy})})
        reports.append(score_task(catalog, recipe, scorer))
        scorer_key = reports[-1].counts["scorer"]
    shards = shard_task(catalog, recipe, scorer_key, str(out / "shards" / "train"), "train")
    reports.append(shards)
    result = {"manifest": shards.files["manifest"], "run_key": run_key, "flow_run_id": str(flow_run.id)}
    if params.train_config:
        result.update(_train_and_evaluate(params, catalog, recipe, shards, state_path, out, reports))
    create_table_artifact(
        key="curate-and-train-stages", table=_stage_rows(reports), description="every stage of this run"
    )
    result["stages"] = [r.summary_row() for r in reports]
    result["reports"] = [{"stage": r.stage, "what": w, "path": f} for r in reports for w, f in r.files.items()]
    state_path.write_text(json.dumps({k: v for k, v in result.items() if k != "stages"}, indent=2))
    logger.info(
        f"shards: {result['manifest']}; checkpoint: {result.get('checkpoint')}; evaluation: {result.get('evaluation')}"
    )
    return result


def _train_and_evaluate(params, catalog, recipe, shards, state_path: Path, out: Path, reports: list) -> dict:
    """Train on the shards (from the last checkpoint with ``on_new_data: continue`` or ``reprofile``), record the
    run in the catalog, then evaluate."""
    from training.config import continued_config, load_config

    manifest = FileRef(path=shards.files["manifest"])
    config = params.train_config
    previous = json.loads(state_path.read_text()).get("checkpoint") if state_path.exists() else None
    if (params.on_new_data == "continue" or params.reprofile) and previous and Path(previous).exists():
        config = str(continued_config(config, previous, out))
    start = load_config(config).model  # the base model, or the checkpoint this round continues
    output = str(out / "train" / content_hash([shards.counts["manifest_sha256"], start], length=12))
    trained = train_task(FileRef(path=config), manifest, output, params.nprocs, catalog=catalog)  # recorded too
    reports.append(trained)
    result = {"checkpoint": trained.files["final"]}
    if params.evaluate:
        ev = shard_task(catalog, recipe, None, str(out / "shards" / "eval"), "eval")
        final, data = ModelRef(path=trained.files["final"]), FileRef(path=ev.files["manifest"])
        evaluated = eval_task(final, data, catalog, "curate-and-train", config=params.eval_config(),
                              train_config=FileRef(path=config))  # fmt: skip
        reports += [ev, evaluated]
        result["evaluation"] = evaluated.files["results"]
    return result


def _current_policy(params: PipelineParams, state_path: Path) -> str | None:
    """With ``reprofile``: the checkpoint the last round trained (None before the first round)."""
    if not params.reprofile or not state_path.exists():
        return None
    checkpoint = json.loads(state_path.read_text()).get("checkpoint")
    return checkpoint if checkpoint and Path(checkpoint).exists() else None


def _stage_rows(reports) -> list[dict]:
    """One row per stage with the same keys: stage, title, seconds, files (as one column)."""
    return [
        {
            "stage": r.stage,
            "title": r.title,
            "seconds": r.summary_row()["seconds"],
            "facts": ", ".join(f"{k}={v}" for k, v in r.counts.items()),
            "files": ", ".join(r.files.values()),
        }
        for r in reports
    ]
