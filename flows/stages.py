"""The stage layer: one function per stage, the only thing the two faces call.

Each takes its typed config and inputs, decides where its report files go and builds its engine from an
``EngineSpec``, and returns a ``StageReport``. The ``vlmr1`` CLI parses options, calls one of these and prints the
report; a Prefect task (``flows.tasks``) calls one and publishes it. Neither face holds domain logic, so the two
cannot drift (``tests/test_flows/test_faces.py`` runs every stage through both and compares).

Ends other than a report are exceptions of ``vlmr1.errors`` (``StageFailed``, ``Interrupted``) or a user's mistake
(``ValueError`` and its kin, naming the file, option or record): the CLI's error table maps each to its exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from curation.difficulty.config import ScorerConfig
from curation.ingest.source import SourceSpec
from curation.quality.recipe import Recipe
from curation.ray_cluster import RaySpec
from training.evaluate import EvalConfig
from training.launch import LaunchSpec
from vlmr1.errors import Interrupted, StageFailed
from vlmr1.report import StageReport


def report_dir(catalog: str | Path, stage: str, name: str) -> Path:
    """Where a stage's report files go unless told: ``reports/<stage>/<name>`` beside the catalog."""
    return Path(catalog).parent / "reports" / stage / name


def ingest(
    catalog: str | Path, sources: list[SourceSpec], ray: RaySpec | None = None, on_file: Callable | None = None
) -> StageReport:
    """Each file into the catalog; one bad file never stops the others. Raises ``StageFailed`` (with the report)
    when a file failed or gave no sample, after the rest were ingested."""
    from curation.ingest.ledger import IngestLedger

    ledger = IngestLedger(len(sources))
    for n, source in enumerate(sources):
        if on_file:
            on_file(n, source.path)
        try:
            ledger.ingest(catalog, source, ray)
        except Interrupted:
            raise Interrupted(f"interrupted: {n} of {len(sources)} files ingested (the one in progress left no "
                              "row); the same command resumes, skipping them") from None  # fmt: skip
    report = ledger.report()
    if ledger.problems:
        raise StageFailed(ledger.failed_line(), report, ledger.problems)
    return report


def quality(catalog: str | Path, recipe: Recipe, out: str | Path | None = None) -> StageReport:
    """Flags per rule in the catalog, the funnel, a markdown + PNG report."""
    from curation.quality.apply import evaluate_recipe
    from curation.quality.report import write_quality_report

    r = evaluate_recipe(catalog, recipe)
    report = r.report()
    folder = Path(out or report_dir(catalog, "quality", r.folder_name()))
    report.files.update(write_quality_report(r, folder))
    report.files.update(_suspects(catalog, None, folder))
    return report


def _suspects(catalog: str | Path, scorer: str | None, folder: Path) -> dict[str, str]:
    """The top suspect labels under ``scorer`` (None: the newest scorer with label quality) as a contact sheet."""
    from curation.difficulty.label_quality import newest_with_labels
    from curation.review.run import suspects_sheet

    scorer = scorer or newest_with_labels(catalog)
    return suspects_sheet(catalog, scorer, folder) if scorer else {}


def quality_diff(catalog: str | Path, a: Recipe, b: Recipe, out: str | Path | None = None) -> StageReport:
    """The samples two recipes disagree on, by the rules that drop them."""
    from curation.quality.apply import diff
    from curation.quality.report import write_diff

    d = diff(catalog, a, b)
    return write_diff(d, Path(out or report_dir(catalog, "quality", f"diff-{a.name}-{b.name}")))


def score(
    catalog: str | Path, recipe: Recipe, config: ScorerConfig, limit: int | None = None, progress=None
) -> StageReport:
    """Difficulty by pass@k (resumable; a sample is never scored twice under one scorer key), its report."""
    from curation.difficulty.dispatch import score_with
    from curation.difficulty.label_quality import compute as label_quality
    from curation.difficulty.scoring import write_difficulty_report
    from curation.selection.select import fresh_quality, training_candidate_count

    refreshed = fresh_quality(catalog, recipe)
    if not training_candidate_count(catalog, recipe):  # said before a model loads
        raise StageFailed(f"{catalog}: recipe {recipe.name!r} keeps no training sample to score (ingest a training "
                          f"split; `vlmr1 catalog {catalog}` shows what is there)")  # fmt: skip
    summary = score_with(catalog, recipe, config, limit=limit, progress=progress)
    labels = label_quality(catalog, summary.scorer_key)  # from the rollouts just stored: no generation
    report = summary.report(catalog)
    report.counts |= {f"labels {k}": v for k, v in labels.items()}
    folder = report_dir(catalog, "difficulty", summary.scorer_key)
    report.files.update(write_difficulty_report(catalog, summary.scorer_key, folder))
    report.files.update(_suspects(catalog, summary.scorer_key, folder))
    report.notes[:0] = [refreshed] if refreshed else []
    return report


def shard(
    catalog: str | Path,
    recipes: list[Recipe],
    out: str | Path,
    *,
    scorer: str | None = None,
    pool: str = "train",
    embed_images: bool = False,
    equal_size: bool = False,
    template: str | None = None,
) -> StageReport:
    """Select by recipe and write deterministic, checksummed shards; several recipes go to ``out/<name>``.
    ``scorer``: a scorer key, ``latest`` (the last registered) or None (no difficulty band)."""
    from curation.difficulty.scoring import latest_scorer
    from curation.selection.select import equal_size as equalize
    from curation.selection.select import fresh_quality, select
    from curation.shards.write import shard_report, write_shards

    scorer = latest_scorer(catalog) if scorer == "latest" else scorer
    refreshed = [fresh_quality(catalog, r) for r in recipes] if pool == "train" else []  # eval pools: no flags
    selections = [select(catalog, r, scorer, pool=pool) for r in recipes]
    selections = equalize(selections) if equal_size else selections
    reports = []
    for sel in selections:
        target = Path(out) if len(selections) == 1 else Path(out) / sel.recipe.name
        target.parent.mkdir(parents=True, exist_ok=True)
        manifest = write_shards(sel, catalog, target, embed_images=embed_images, template=template)
        reports.append(shard_report(manifest, pool))
    report = reports[0] if len(reports) == 1 else _shard_sets(reports)
    report.notes[:0] = [note for note in refreshed if note]
    return report


def _shard_sets(reports: list[StageReport]) -> StageReport:
    rows = [{"recipe": r.counts["recipe"], "rows": r.counts["rows"], "manifest": r.files["manifest"]} for r in reports]
    files = {f"{r.counts['recipe']} manifest": r.files["manifest"] for r in reports}
    title = f"shards: {len(reports)} recipes"
    return StageReport("shard", title, {"recipes": len(reports)}, tables={"shard sets": rows}, files=files)


def train(
    spec: LaunchSpec,
    *,
    overwrite: bool = False,
    timeout: float | None = None,
    on_line: Callable[[str], None] | None = None,
    catalog: str | Path | None = None,
) -> StageReport:
    """GRPO on the shards as a managed process group; with ``catalog``, the run is recorded there too."""
    from training.launch import run, stopped_at
    from training.outputs import prepare_output
    from training.preflight import preflight

    cfg, _ = preflight(spec.config, spec.manifest)  # a wrong value or path fails now, in one line
    prepare_output(spec.output, resume=spec.resume, overwrite=overwrite)
    if catalog is not None:  # a catalog another process holds is said now, not after training
        _writable(catalog)
    r = run(spec, timeout=timeout, on_line=on_line)
    if r.cancelled and timeout is None:
        raise Interrupted(f"interrupted: {stopped_at(r, spec.output)}")
    if r.returncode or r.result is None:
        why = f": {r.last_error}" if r.last_error else ""
        raise StageFailed(f"training failed (exit {r.returncode}){why}; log: {r.log}")
    report = r.report()
    if catalog is not None:
        recorded = record(catalog, spec.manifest, spec.output, cfg.model)
        report.counts["recorded run"] = recorded.counts["run"]
        report.notes += recorded.notes
    return report


def record(catalog: str | Path, manifest: str | Path, output: str | Path, base_model: str) -> StageReport:
    """Merge a finished run (lineage, per-sample rewards) into the catalog; merging twice changes nothing."""
    from curation.feedback.runs import record_run

    _writable(catalog)
    return record_run(catalog, manifest, output, base_model).report()


def evaluate(
    checkpoint: str | Path,
    data: list[str | Path],
    config: EvalConfig,
    *,
    train_config: str | Path | None = None,
    catalog: str | Path | None = None,
    run: str = "cli",
) -> StageReport:
    """Greedy evaluation of ``checkpoint`` on evaluation shards, as long as training let answers be; results
    written beside the checkpoint and, with ``catalog``, recorded in its evaluations table."""
    from curation.feedback.evaluations import record as record_evaluation
    from training.config import load_config
    from training.evaluate import evaluate_model, evaluation_report, rows_from_shards, shards_dialect, write_results
    from vlmr1.rollout import closing

    if catalog is not None:
        _writable(catalog)
    train = load_config(train_config) if train_config else None
    engine_spec, sampling, template = config.resolved(checkpoint, train)
    reports = []
    with closing(engine_spec.build()) as engine:
        for d in (Path(p) for p in data):
            d = d.parent if d.is_file() else d  # a shard folder or its manifest
            rows = rows_from_shards(d)
            results = evaluate_model(engine, rows, template=template, sampling=sampling, dialect=shards_dialect(d))
            path = write_results(results, checkpoint, d.name)
            if catalog is not None:
                record_evaluation(catalog, path, run=run)
            reports.append(evaluation_report(results, path, d.name))
    report = reports[0] if len(reports) == 1 else _merged(reports)
    report.counts["max new tokens"] = sampling.max_new_tokens
    return report


def _merged(reports: list[StageReport]) -> StageReport:
    merged = StageReport("evaluate", "evaluation", {"samples": sum(r.counts["samples"] for r in reports)})
    for r in reports:
        for name, rows in r.tables.items():
            merged.tables.setdefault(name, []).extend(rows)
        merged.files.update({f"{k} {Path(v).stem}": v for k, v in r.files.items()})
    return merged


def reprofile(catalog: str | Path, base: str, current: str, out: str | Path | None = None) -> StageReport:
    """Base vs current pass rate per sample: how many moved band, by source, task and category."""
    from curation.feedback.reprofile import band_movement

    return band_movement(catalog, base, current, out or report_dir(catalog, "reprofile", f"{base}-{current}"))


def export(
    shards: str | Path, to: str, out: str | Path, *, embed_images=False, verify_images=False, overwrite=False
) -> StageReport:
    """Verified shards for VLM-R1 (jsonl per task + launch scripts) or EasyR1 (parquet + reward function)."""
    from curation.exports.stage import export_shards

    return export_shards(shards, to, out, embed_images=embed_images, verify_images=verify_images, overwrite=overwrite)


def review(catalog: str | Path, choice, out: str | Path | None = None, scorer: str | None = "latest",
           limit: int = 96) -> StageReport:  # fmt: skip
    """Chosen samples drawn with their label and the scorer's answers (a page and a contact sheet), and the
    scorer's rollouts and labels as COCO files. ``scorer``: a key, ``latest`` (None when nothing is scored)."""
    from curation.difficulty.scoring import latest_scorer
    from curation.overview import require_catalog
    from curation.review.run import review as run_review

    require_catalog(catalog)
    if scorer == "latest":
        try:
            scorer = latest_scorer(catalog)
        except ValueError:
            scorer = None
    name = choice.rule or (choice.recipe.name if choice.recipe else "query")
    return run_review(catalog, choice, Path(out or report_dir(catalog, "review", name)), scorer, limit)


def _writable(catalog: str | Path) -> None:
    """Open and close the catalog for writing: a missing one or one another process holds is said before the work."""
    from curation import catalog as cat
    from curation.overview import require_catalog

    with cat.connect(require_catalog(catalog)):
        pass
