"""The ``vlmr1`` command line. Heavy modules are imported inside commands so start-up stays fast."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from vlmr1.report import print_report

app = typer.Typer(
    help="Curate vision datasets into GRPO training sets (VLM-R1 style) and train on them.", no_args_is_help=True
)
rewards_app = typer.Typer(help="Score completions with the rule-based rewards.", no_args_is_help=True)
app.add_typer(rewards_app, name="rewards")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"vlmr1-curate {version('vlmr1-curate')}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show an error's traceback instead of its one line."),
) -> None:
    """vlmr1-curate."""


@rewards_app.command("list")
def rewards_list() -> None:
    """List the registered rewards."""
    from rich.console import Console
    from rich.table import Table

    from vlmr1.rewards import REGISTRY

    table = Table("name", "task", "version", "what it scores")
    for spec in REGISTRY.values():
        table.add_row(spec.name, spec.task or "any", str(spec.version), spec.doc)
    Console().print(table)


@rewards_app.command("score")
def rewards_score(
    reward: str = typer.Option(..., "--reward", "-r", help="Reward name (see `vlmr1 rewards list`)."),
    frame: str = typer.Option(
        "abs_original", "--frame", "-f", help="Box frame of the completions: abs_original, abs_resized, norm1000."
    ),
    input: Optional[Path] = typer.Argument(None, help="JSON lines file; standard input when omitted or '-'."),
    min_pixels: int = typer.Option(
        56 * 56, help="abs_resized: processor min_pixels (when rows carry no resized size)."
    ),
    max_pixels: int = typer.Option(28 * 28 * 16384, help="abs_resized: processor max_pixels."),
    batch_size: int = typer.Option(4096, help="Rows scored per batch."),
) -> None:
    """Score JSON lines ``{"completion", "solution", "width", "height"}``; print ``{"reward": x}`` per line, in
    order."""
    from vlmr1.boxes import BoxFrame
    from vlmr1.rewards import get_reward, score_rows

    try:
        get_reward(reward)
        box_frame = BoxFrame(frame, min_pixels=min_pixels, max_pixels=max_pixels)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    stream = sys.stdin if input is None or str(input) == "-" else open(input, encoding="utf-8")
    name = "<stdin>" if stream is sys.stdin else str(input)
    out = sys.stdout
    pending: list[dict] = []

    def flush() -> None:  # a row of the other task: null (TRL's None), as score_rows gives it
        for value in score_rows(reward, pending, box_frame):
            out.write(json.dumps({"reward": value}) + "\n")
        pending.clear()

    with stream:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                pending.append(_reward_row(line, f"{name}:{lineno}"))
            except ValueError as exc:
                typer.echo(str(exc), err=True)
                raise typer.Exit(2) from None
            if len(pending) >= batch_size:
                flush()
        flush()


def _reward_row(line: str, where: str) -> dict:
    """One input row, validated; errors name the file and line."""
    from vlmr1.records import parse_solution

    try:
        row = json.loads(line)
    except RecursionError:
        raise ValueError(f"{where}: nested too deeply to be a reward row") from None
    except ValueError as exc:
        raise ValueError(f"{where}: not JSON: {exc}") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object")
    for key in ("solution", "width", "height"):
        if key not in row:
            raise ValueError(f"{where}: missing field {key!r}")
    if not isinstance(row.get("completion", ""), str):
        raise ValueError(f"{where}: completion must be a string")
    for key in ("width", "height", "resized_width", "resized_height"):
        if key in row and (not isinstance(row[key], int) or isinstance(row[key], bool) or row[key] <= 0):
            raise ValueError(f"{where}: {key} must be a positive integer, got {row[key]!r}")
    if row.get("task", "rec") not in ("rec", "ovd"):
        raise ValueError(f"{where}: task must be 'rec' or 'ovd', got {row['task']!r}")
    if ("resized_width" in row) != ("resized_height" in row):
        raise ValueError(f"{where}: give both resized_width and resized_height, or neither")
    row["solution"] = parse_solution(row["solution"], f"{where}: solution")
    return row


ingest_app = typer.Typer(help="Ingest annotations into the catalog.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")


CatalogOpt = typer.Option(..., "--catalog", help="The DuckDB catalog file (created if missing).")
ExistingCatalogOpt = typer.Option(..., "--catalog", help="The DuckDB catalog file (`vlmr1 ingest` creates it).")


def _existing(catalog: Path) -> Path:
    """Commands that read a catalog refuse a missing one (a typo would otherwise create an empty catalog and
    report nothing to do)."""
    from curation.overview import NoCatalog

    if not catalog.is_file():
        raise NoCatalog(f"{catalog}: no such catalog (create one with `vlmr1 ingest ... --catalog {catalog}`)")
    return catalog


ImagesOpt = typer.Option(
    None, "--images", help="Image root; repeat for several. Images are probed (size, hashes); bad ones become rejects."
)
VerifyOpt = typer.Option(False, "--verify-images", help="Fully decode each image (finds truncated files; slower).")
KeepOpt = typer.Option(
    False,
    "--keep-bad-images",
    help="Keep samples whose image is bad (the quality rules flag them) instead of rejecting.",
)


RayOpt = typer.Option(False, "--ray", help="Probe images on Ray: a local cluster, or --ray-address's.")
RayAddressOpt = typer.Option(None, "--ray-address", help="An existing Ray cluster ('auto', HOST:6379): --ray there.")


def _ray_spec(ray: bool, address: Optional[str], actors: Optional[int] = None):
    """The RaySpec the --ray options ask for, or None (then Ray is never imported)."""
    if not ray and address is None and actors is None:
        return None
    import pydantic

    from curation.ray_cluster import RaySpec

    given = {k: v for k, v in {"address": address, "actors": actors}.items() if v is not None}
    try:
        return RaySpec.model_validate(given)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        raise ValueError(f"--ray-{error['loc'][0]}: {error['msg']}") from None


def _image_check(images: Optional[list[Path]], verify: bool, keep_bad: bool = False, ray=None):
    from curation.images import ImageCheck

    return ImageCheck([Path(p) for p in images], verify=verify, reject=not keep_bad, ray=ray) if images else None


def _run_ingest(paths: list[Path], catalog_path: Path, reader, check) -> None:
    """Ingest each file with a progress bar; print one summary row per file (its report's counts), then one whole
    line per file that failed or gave no sample. A file that cannot be read never stops the others."""
    import pickle

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from curation.catalog import CatalogBusy
    from curation.ingest.store import no_samples_line

    console = Console()
    columns = ("file", "status", "samples", "images", "annotations", "rejects")
    table = Table(*columns, "rejects by reason", title="ingest summary")
    problems: list[str] = []
    bar = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*bar, console=console, transient=True) as progress:
        task = progress.add_task("ingesting", total=len(paths))
        for n, path in enumerate(paths):
            progress.update(task, description=f"ingesting {path.name}")
            try:
                summary = reader.ingest(catalog_path, path, images=check)
            except CatalogBusy:
                raise  # every file would wait for the same lock: `run` says so once (exit 3)
            except Interrupted:
                raise Interrupted(f"interrupted: {n} of {len(paths)} files ingested (the one in progress left no "
                                  "row); the same command resumes, skipping them") from None  # fmt: skip
            except Exception as exc:  # noqa: BLE001 (one bad file never stops the others; the line says why)
                known = isinstance(exc, (ValueError, OSError, pickle.UnpicklingError))
                problems.append(str(exc).splitlines()[0] if known else f"{path}: {type(exc).__name__}: {exc}")
                table.add_row(str(path), "[red]failed[/]", "-", "-", "-", "-", "see below")
                progress.advance(task)
                continue
            report = summary.report()
            reasons = ", ".join(f"{r['reason']}: {r['rejects']}" for r in report.table("rejects by reason")) or "-"
            if report.counts.get("samples") == 0 and report.counts["status"] != "unchanged, skipped":
                report.counts["status"] = "[red]no samples[/]"
                problems.append(no_samples_line(summary, reader, check))
            table.add_row(*(str(report.counts.get(k, "-")) for k in columns), reasons)
            progress.advance(task)
    console.print(table)
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        rest = "the others were ingested" if len(problems) < len(paths) else "nothing was ingested"
        typer.echo(f"{len(problems)} of {len(paths)} files failed or gave no sample; {rest}", err=True)
        raise typer.Exit(1)


@ingest_app.command("coco")
def ingest_coco_cmd(
    paths: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="COCO instances json files."),
    catalog: Path = CatalogOpt,
    images: Optional[list[Path]] = ImagesOpt,
    verify_images: bool = VerifyOpt,
    keep_bad_images: bool = KeepOpt,
    ray: bool = RayOpt,
    ray_address: Optional[str] = RayAddressOpt,
    absent: int = typer.Option(3, help="Absent categories added to each OVD prompt."),
    seed: int = typer.Option(0, help="Seed for the absent categories and their order."),
    source: str = typer.Option("coco", help="Source name of the samples."),
    split: Optional[str] = typer.Option(None, help="Split (default: from the file name, instances_<split>.json)."),
) -> None:
    """COCO instances json: images, annotations, one OVD sample per image."""
    from curation.ingest import CocoReader

    reader = CocoReader(source=source, split=split, absent=absent, seed=seed)
    check = _image_check(images, verify_images, keep_bad_images, _ray_spec(ray, ray_address))
    _run_ingest(paths, catalog, reader, check)


@ingest_app.command("refcoco")
def ingest_refcoco_cmd(
    paths: list[Path] = typer.Argument(
        ..., exists=True, dir_okay=False, help="refs(<splitBy>).p files (instances.json beside each)."
    ),
    catalog: Path = CatalogOpt,
    images: Optional[list[Path]] = ImagesOpt,
    verify_images: bool = VerifyOpt,
    keep_bad_images: bool = KeepOpt,
    ray: bool = RayOpt,
    ray_address: Optional[str] = RayAddressOpt,
    source: Optional[str] = typer.Option(None, help="Source name (default: the folder name, e.g. refcocog)."),
    instances: Optional[Path] = typer.Option(None, help="The COCO-format instances file (default: beside it)."),
) -> None:
    """RefCOCO / RefCOCO+ / RefCOCOg: one REC sample per sentence. Pickles are loaded as plain data only."""
    from curation.ingest import RefcocoReader

    reader = RefcocoReader(source=source, instances=instances)
    check = _image_check(images, verify_images, keep_bad_images, _ray_spec(ray, ray_address))
    _run_ingest(paths, catalog, reader, check)


@ingest_app.command("d3")
def ingest_d3_cmd(
    paths: list[Path] = typer.Argument(
        ..., exists=True, dir_okay=False, help="d3_full_annotations.json (d3_pkl/ found beside d3_json/)."
    ),
    catalog: Path = CatalogOpt,
    images: Optional[list[Path]] = ImagesOpt,
    verify_images: bool = VerifyOpt,
    keep_bad_images: bool = KeepOpt,
    ray: bool = RayOpt,
    ray_address: Optional[str] = RayAddressOpt,
    pkl_dir: Optional[Path] = typer.Option(None, help="Folder with sentences.pkl and groups.pkl."),
) -> None:
    """D3: one evaluation-only sample per (image, description of its group), no-target pairs included."""
    from curation.ingest import D3Reader

    check = _image_check(images, verify_images, keep_bad_images, _ray_spec(ray, ray_address))
    _run_ingest(paths, catalog, D3Reader(pkl_dir=pkl_dir), check)


@ingest_app.command("jsonl")
def ingest_jsonl_cmd(
    paths: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="VLM-R1 jsonl files."),
    catalog: Path = CatalogOpt,
    images: Optional[list[Path]] = ImagesOpt,
    verify_images: bool = VerifyOpt,
    keep_bad_images: bool = KeepOpt,
    ray: bool = RayOpt,
    ray_address: Optional[str] = RayAddressOpt,
    source: Optional[str] = typer.Option(None, help="Source name (default: the file's stem)."),
    split: str = typer.Option("train", help="Split of the samples."),
) -> None:
    """VLM-R1 jsonl: REC or OVD per line, task from the answer. Without --images, lines need width/height."""
    from curation.ingest import JsonlReader

    reader = JsonlReader(source=source, split=split)
    check = _image_check(images, verify_images, keep_bad_images, _ray_spec(ray, ray_address))
    _run_ingest(paths, catalog, reader, check)


@app.command()
def quality(
    recipe: Optional[str] = typer.Argument(
        None, help="Recipe YAML, or the name of a shipped one (default, strict, none)."
    ),
    catalog: Path = ExistingCatalogOpt,
    diff: Optional[tuple[str, str]] = typer.Option(
        None, "--diff", help="Two recipes: show the samples they disagree on, by rule."
    ),
    out: Optional[Path] = typer.Option(
        None, help="Report folder (default: reports/quality/<recipe>-<hash> beside the catalog)."
    ),
) -> None:
    """Evaluate a quality recipe: flags per rule in the catalog, a funnel table, markdown + PNG report."""
    _existing(catalog)
    from rich.console import Console
    from rich.markdown import Markdown

    from curation.quality.apply import RuleError, evaluate_recipe
    from curation.quality.apply import diff as recipe_diff
    from curation.quality.recipe import RecipeError, load_recipe
    from curation.quality.report import diff_markdown, write_quality_report

    console = Console()
    try:
        if diff:
            d = recipe_diff(catalog, load_recipe(diff[0]), load_recipe(diff[1]))
            text = diff_markdown(d)
            folder = out or catalog.parent / "reports" / "quality" / f"diff-{d.a.recipe.name}-{d.b.recipe.name}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "diff.md").write_text(text)
            console.print(Markdown(text))
            console.print(f"written: {folder / 'diff.md'}")
            return
        if recipe is None:
            raise typer.BadParameter("give a RECIPE, or --diff A B")
        r = evaluate_recipe(catalog, load_recipe(recipe))
    except (RecipeError, RuleError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    report = r.report()
    report.files.update(
        write_quality_report(r, out or catalog.parent / "reports" / "quality" / f"{r.recipe.name}-{r.recipe_hash}")
    )
    report.notes.append(f"kept {r.kept} of {r.total} ({r.eval_samples} evaluation samples are never trained on)")
    print_report(report, console)


def _fresh_quality(catalog: Path, recipe) -> None:
    """The CLI's side of ``StaleQuality``: recompute missing or stale flags (seconds at 1M samples) and say so."""
    from curation import catalog as cat
    from curation.quality.apply import evaluate_recipe
    from curation.selection import StaleQuality, check_quality

    with cat.connect(catalog) as con:
        try:
            check_quality(con, recipe)
            return
        except StaleQuality as exc:
            reason = str(exc)
    typer.echo(f"{reason.split(':')[0]}: re-evaluating its quality flags now", err=True)
    r = evaluate_recipe(catalog, recipe)
    typer.echo(f"recipe {recipe.name!r}: kept {r.kept} of {r.total} samples on the current catalog", err=True)


@app.command()
def score(
    recipe: str = typer.Argument(..., help="Recipe YAML or shipped name: its kept training candidates are scored."),
    catalog: Path = ExistingCatalogOpt,
    config: Optional[Path] = typer.Option(
        None, "--config", help="Scorer config YAML (engine, sampling, template, ...)."
    ),
    model: Optional[str] = typer.Option(None, "--model", help="Override engine.model: a model folder or served name."),
    engine: Optional[str] = typer.Option(
        None, "--engine", help="Override engine.kind: hf | vllm | vllm-server (started and stopped for you) | openai."
    ),
    base_url: Optional[str] = typer.Option(None, help="Override engine.base_url (openai)."),
    k: Optional[int] = typer.Option(None, "--k", help="Override sampling.n: completions per sample."),
    max_new_tokens: Optional[int] = typer.Option(
        None, "--max-new-tokens", help="Override sampling.max_new_tokens (match the training config's)."
    ),
    limit: Optional[int] = typer.Option(None, "--limit", help="Score at most N new samples."),
    ray: bool = typer.Option(False, "--ray", help="Score on Ray: a local cluster, or --ray-address's."),
    ray_address: Optional[str] = RayAddressOpt,
    ray_actors: Optional[int] = typer.Option(None, help="Engines in the Ray actor pool; implies --ray."),
) -> None:
    """Difficulty by pass@k: k rollouts per sample, rewards, pass rates; resumable, never scores a sample twice."""
    _existing(catalog)
    from curation.difficulty import write_difficulty_report
    from curation.quality.recipe import RecipeError, load_recipe
    from curation.scorer_config import ScorerConfigError, score_with

    try:
        r = load_recipe(recipe)
        cfg = _scorer_config(config, model, engine, base_url, {"n": k, "max_new_tokens": max_new_tokens})
        asked = _ray_spec(ray, ray_address, ray_actors)
        if asked is not None:  # the command line's options over the config's ray block
            given = (cfg.ray.model_dump() if cfg.ray else {}) | asked.model_dump(exclude_unset=True)
            cfg = cfg.model_copy(update={"ray": type(asked).model_validate(given)})
    except (RecipeError, ScorerConfigError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    _fresh_quality(catalog, r)
    _some_candidates(catalog, r)
    try:
        with _progress("scoring") as update:
            summary = score_with(catalog, r, cfg, limit=limit, progress=update)
    except Interrupted:
        s = update.last
        done = f"{s.partitions_merged} of {s.partitions} partitions merged" if s else "no partition merged yet"
        raise Interrupted(f"interrupted: {done}; the same command resumes") from None
    report = summary.report(catalog)
    report.files.update(
        write_difficulty_report(
            catalog, summary.scorer_key, catalog.parent / "reports" / "difficulty" / summary.scorer_key
        )
    )
    print_report(report)


def _some_candidates(catalog: Path, recipe) -> None:
    """Scoring nothing is an error the user should hear before a model loads (exit 1)."""
    from curation import catalog as cat
    from curation.selection import candidate_frame

    with cat.connect(catalog) as con:
        if candidate_frame(con, recipe, "train", columns=None).height:
            return
    typer.echo(
        f"{catalog}: recipe {recipe.name!r} keeps no training sample to score (ingest a training split; "
        f"`vlmr1 catalog {catalog}` shows what is there)",
        err=True,
    )
    raise typer.Exit(1)


def _scorer_config(path: Optional[Path], model, engine, base_url, sampling: dict):
    """The scorer config from YAML (or defaults) with the command line's overrides applied."""
    from curation.scorer_config import ScorerConfig, load_scorer_config

    raw = load_scorer_config(path).model_dump() if path else {"engine": {"model": model or ""}}
    overrides = {"model": model, "kind": engine, "base_url": base_url}
    raw["engine"].update({key: v for key, v in overrides.items() if v is not None})
    raw.setdefault("sampling", {}).update({key: v for key, v in sampling.items() if v is not None})
    if not raw["engine"]["model"]:
        raise ValueError("give --model, or a --config whose engine names a model")
    return ScorerConfig.model_validate(raw)


@contextmanager
def _progress(what: str):
    """A rich progress bar with rates and ETA; yields ``update(done, total, summary)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(what, total=None, rate="")

        def update(done: int, total: int, s) -> None:
            update.last = s  # what an interrupted run kept
            secs = max(s.wall_seconds, 1e-9)
            progress.update(
                task, completed=done, total=total, rate=f"{done / secs:.2f} samples/s, {s.tokens / secs:.0f} tokens/s"
            )

        update.last = None
        yield update


@app.command()
def shard(
    recipes: list[str] = typer.Argument(..., help="Recipe(s). Several: an ablation, written to OUT/<recipe name>."),
    catalog: Path = ExistingCatalogOpt,
    out: Path = typer.Option(..., "--out", help="Output (a symlink to the current version folder)."),
    scorer: Optional[str] = typer.Option(
        None, "--scorer", help="Scorer key whose difficulty band the recipe applies; 'latest': the last registered."
    ),
    embed_images: bool = typer.Option(
        False, "--embed-images", help="Put image bytes in the shards (portable) instead of paths."
    ),
    equal_size: bool = typer.Option(
        False, "--equal-size", help="Downsample every recipe's pool to the smallest (seeded)."
    ),
    template: Optional[str] = typer.Option(None, help="Prompt template (default: the scorer's, else vlmr1)."),
    eval_pool: bool = typer.Option(
        False, "--eval", help="Shard the evaluation samples (eval splits, eval-only pools) for `vlmr1 eval`."
    ),
) -> None:
    """Select samples by recipe and write deterministic, checksummed shards with a manifest."""
    _existing(catalog)
    from rich.console import Console
    from rich.table import Table

    from curation.quality.recipe import RecipeError, load_recipe
    from curation.selection import equal_size as equalize
    from curation.selection import select
    from curation.shards import write_shards

    console = Console()
    try:
        scorer = _latest_scorer(catalog) if scorer == "latest" else scorer
        loaded = [load_recipe(r) for r in recipes]
        if not eval_pool:
            for r in loaded:
                _fresh_quality(catalog, r)
        selections = [select(catalog, r, scorer, pool="eval" if eval_pool else "train") for r in loaded]
    except (RecipeError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if equal_size:
        selections = equalize(selections)
    table = Table("recipe", "rows", "manifest", title="shards")
    for sel in selections:
        target = out if len(selections) == 1 else out / sel.recipe.name
        target.parent.mkdir(parents=True, exist_ok=True)
        manifest = write_shards(sel, catalog, target, embed_images=embed_images, template=template)
        table.add_row(sel.recipe.name, str(len(sel.rows)), str(manifest))
    console.print(table)


def _latest_scorer(catalog: Path) -> str:
    from curation import catalog as cat

    with cat.connect(catalog) as con:
        found = con.execute("SELECT scorer_key FROM scorers ORDER BY created_at DESC LIMIT 1").fetchall()
    if not found:
        raise ValueError(f"--scorer latest: {catalog} has no scorer yet (run `vlmr1 score` first)")
    return found[0][0]


@app.command("export")
def export_cmd(
    shards: Path = typer.Argument(..., help="A shard folder (or its manifest.json)."),
    to: str = typer.Option(..., "--to", help="vlmr1-jsonl | easyr1"),
    out: Path = typer.Option(..., "--out", help="The export folder (empty or new, unless --overwrite)."),
    embed_images: bool = typer.Option(False, "--embed-images", help="EasyR1: image bytes in the parquet."),
    verify_images: bool = typer.Option(
        False, "--verify-images", help="Re-hash every image the shards point at by path (checksums from ingest)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a folder that already holds files."),
) -> None:
    """Export verified shards for VLM-R1 (jsonl per task + launch scripts) or EasyR1 (parquet + reward function)."""
    from curation.exports import dialect_warning
    from curation.exports.easyr1 import to_easyr1
    from curation.exports.vlmr1_jsonl import short_files, to_vlmr1_jsonl
    from vlmr1.shards import ShardError, read_manifest

    if to not in ("vlmr1-jsonl", "easyr1"):
        raise typer.BadParameter("--to must be vlmr1-jsonl or easyr1")
    try:
        target = ("vlmr1", "VLM-R1") if to == "vlmr1-jsonl" else ("vlmr1-curate", "our EasyR1 reward function")
        manifest = read_manifest(shards)[1]
        said = dialect_warning(manifest, *target)
        if said:
            typer.echo(said, err=True)
        if to == "vlmr1-jsonl":
            files = to_vlmr1_jsonl(shards, out, check_images=verify_images, overwrite=overwrite)
            for f in files:
                typer.echo(f"{f.task}: {f.path} ({f.lines} lines), images in {f.image_folder}")
            for task in sorted({f.task for f in files}):
                typer.echo(
                    f"train {task} with VLM-R1: VLM_R1=<checkout> MODEL=<model> bash {out / f'train-{task}.sh'}"
                )
            for line in short_files(files, manifest):
                typer.echo(f"warning: {line}", err=True)
        else:
            export = to_easyr1(shards, out, embed=embed_images, check_images=verify_images, overwrite=overwrite)
            typer.echo("python3 -m verl.trainer.main config=examples/config.yaml " + " ".join(export.overrides()))
    except (ShardError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command()
def train(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training config YAML."),
    manifest: Path = typer.Option(..., "--manifest", help="Shard folder or its manifest.json."),
    output: Path = typer.Option(..., "--output", help="Checkpoints, reward log, final model."),
    nprocs: int = typer.Option(1, help="Processes on this machine."),
    launcher: str = typer.Option("torchrun", help="torchrun | accelerate (more than one process)."),
    num_machines: int = typer.Option(1),
    machine_rank: int = typer.Option(0),
    main_address: str = typer.Option("127.0.0.1"),
    resume: bool = typer.Option(False, help="Continue from the last checkpoint in OUTPUT."),
    overwrite: bool = typer.Option(False, help="Start again from scratch in an OUTPUT that holds a run (removed)."),
    timeout: Optional[float] = typer.Option(None, help="Seconds; the whole process group is killed after."),
    catalog: Optional[Path] = typer.Option(
        None, "--catalog", help="Record the run and its per-sample rewards in this catalog (`vlmr1 lineage`)."
    ),
) -> None:
    """GRPO (TRL + DeepSpeed) on curated shards, launched as a managed process group."""
    from training.config import TrainConfigError
    from training.launch import LaunchSpec, run, stopped_at
    from training.outputs import prepare_output
    from training.preflight import preflight

    try:
        cfg, _ = preflight(config, manifest)
        prepare_output(output, resume=resume, overwrite=overwrite)
    except (TrainConfigError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    spec = LaunchSpec(
        str(config), str(manifest), str(output), nprocs, launcher, num_machines, machine_rank, main_address,
        resume=resume,
    )  # fmt: skip
    r = run(spec, timeout=timeout, on_line=typer.echo)
    if r.cancelled and timeout is None:
        raise Interrupted(f"interrupted: {stopped_at(r, output)}")
    if r.returncode or r.result is None:
        why = f": {r.last_error}" if r.last_error else ""
        typer.echo(f"training failed (exit {r.returncode}){why}; log: {r.log}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"trained to step {r.result['global_step']}: {r.result.get('final')}; reward log {r.result.get('reward_log')}"
    )
    for line in r.result.get("warnings", []):
        typer.echo(f"warning: {line}", err=True)
    if catalog is not None:
        _record(catalog, manifest, output, cfg.model)


def _record(catalog: Path, manifest: Path, output: Path, base_model: str) -> None:
    from curation.runs import record_run

    rec = record_run(catalog, manifest, output, base_model)
    parent = f", continues run {rec.parent_run}" if rec.parent_run else ""
    typer.echo(f"recorded run {rec.run_id}{parent}: {rec.new_rewards} reward rows merged into {catalog}")
    if rec.unknown_samples:
        typer.echo(f"warning: {rec.unknown_samples} samples of the reward log are not in {catalog}", err=True)


@app.command()
def record(
    output: Path = typer.Argument(..., help="A finished training output folder (train_result.json, reward log)."),
    manifest: Path = typer.Option(..., "--manifest", help="The shards it trained on."),
    config: Path = typer.Option(..., "--config", exists=True, dir_okay=False, help="Its training config."),
    catalog: Path = typer.Option(..., "--catalog", exists=True, dir_okay=False),
) -> None:
    """Merge a finished training run (lineage, per-sample rewards) into the catalog; merging twice changes nothing."""
    from training.config import load_config

    _record(catalog, manifest, output, load_config(config).model)


@app.command()
def lineage(
    checkpoint: Path = typer.Argument(..., help="A model folder a recorded run produced (e.g. OUTPUT/final)."),
    catalog: Path = typer.Option(..., "--catalog", exists=True, dir_okay=False),
    samples: bool = typer.Option(False, "--samples", help="Also list every sample that trained it."),
) -> None:
    """Which runs, shards, recipes, scorers and samples made a checkpoint (its run and every parent run)."""
    from rich.console import Console
    from rich.table import Table

    from curation.runs import lineage as chain
    from curation.runs import trained_samples

    runs = chain(catalog, checkpoint)
    if not runs:
        typer.echo(
            f"error: no recorded run produced {checkpoint} in {catalog} (record it with `vlmr1 record`)", err=True
        )
        raise typer.Exit(1)
    table = Table("run", "checkpoint", "started from", "recipe", "scorer", "manifest sha256", "steps", "samples")
    for r in runs:
        table.add_row(
            r["run_id"], r["checkpoint"], r["base_model"], f"{r['recipe']} ({r['recipe_hash']})",
            str(r["scorer_key"]), r["manifest_sha256"][:16], str(r["global_step"]), str(r["samples"]),
        )  # fmt: skip
    Console(width=250).print(table)
    if samples:
        ids = trained_samples(catalog, checkpoint)
        typer.echo(f"{len(ids)} samples trained {checkpoint}:")
        typer.echo("\n".join(ids))


@app.command()
def reprofile(
    base: str = typer.Option(..., "--base", help="Scorer key of the base model's difficulty."),
    current: str = typer.Option(..., "--current", help="Scorer key of the trained checkpoint's difficulty."),
    catalog: Path = typer.Option(..., "--catalog", exists=True, dir_okay=False),
    out: Path = typer.Option(Path("reports/reprofile"), "--out", help="reprofile.md and reprofile.png go here."),
) -> None:
    """Base vs current pass rate per sample: how many moved band, by source, task and category."""
    from curation.reprofile import band_movement

    print_report(band_movement(catalog, base, current, out))


@app.command("eval")
def eval_cmd(
    checkpoint: Path = typer.Argument(..., exists=True, file_okay=False, help="A model folder (e.g. OUTPUT/final)."),
    data: list[Path] = typer.Option(..., "--data", help="Evaluation shard folder(s) (`vlmr1 shard ... --eval`)."),
    engine: str = typer.Option("hf", "--engine", help="hf | vllm | vllm-server"),
    max_new_tokens: int = typer.Option(256, help="Greedy decoding's length limit."),
    template: str = typer.Option("vlmr1"),
    catalog: Optional[Path] = typer.Option(
        None, "--catalog", help="Also record the metrics in this catalog's evaluations table."
    ),
    run_name: str = typer.Option("cli", "--run"),
) -> None:
    """Greedy evaluation: REC Acc@0.5 / mean IoU per split, OVD dataset-level COCO mAP / AP50."""
    from rich.console import Console
    from rich.table import Table

    from training.evaluate import evaluate_model, rows_from_shards, shards_dialect, write_results
    from vlmr1.rollout import closing, make_engine
    from vlmr1.rollout.base import Sampling

    if catalog is not None:  # a catalog another process holds is said now, not after the evaluation
        from curation import catalog as cat

        with cat.connect(_existing(catalog)):
            pass
    table = Table("data", "split", "task", "n", "metrics", title=f"evaluation of {checkpoint}")
    with closing(make_engine(engine, str(checkpoint))) as eng:
        greedy, evaluated = Sampling.greedy(max_new_tokens), []
        for d in data:
            dialect = shards_dialect(d)
            evaluated.append(
                (d, evaluate_model(eng, rows_from_shards(d), template=template, sampling=greedy, dialect=dialect))
            )
    for d, results in evaluated:
        path = write_results(results, checkpoint, d.name)
        if catalog is not None:
            from curation.evaluations import record

            record(catalog, path, run=run_name)
        for key, m in results["metrics"].items():
            values = ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items() if k not in ("task", "n")
            )
            table.add_row(d.name, key.rsplit("/", 1)[0], m["task"], str(m["n"]), values)
        typer.echo(f"written: {path}")
    Console().print(table)


@app.command("catalog")
def catalog_cmd(
    path: Path = typer.Argument(..., help="A catalog file (never created by this command)."),
    section: Optional[list[str]] = typer.Option(
        None, "--section", "-s", help="summary, sources, rejects, recipes, scorers, runs, evaluations (default: all)"
    ),
) -> None:
    """What a catalog holds: sources, rejects by reason with an example, recipes and what they keep, scorer keys,
    training runs, evaluations."""
    import shutil

    from rich.console import Console
    from rich.table import Table

    from curation.overview import overview

    console = Console(width=max(200, shutil.get_terminal_size().columns))  # rows of paths: wide, never narrower
    for name, rows in overview(path, section).items():
        if not rows:
            console.print(f"[bold]{name}[/bold]: none")
            continue
        table = Table(*rows[0].keys(), title=name, title_justify="left")
        for r in rows:
            table.add_row(*("" if v is None else str(v) for v in r.values()))
        console.print(table)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), help="Where the demo writes its outputs."),
    flow: bool = typer.Option(
        True, help="Also run the curate-and-train flow on the fixtures (ingest to evaluation, about 2 minutes on CPU)."
    ),
) -> None:
    """Run the pipeline on the embedded default and say what it did (Prefect: its own home under OUT)."""
    from flows.demo import isolated_prefect, run_demo

    isolated_prefect(out)
    run_demo(out, flow=flow)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user's input or files cause: one line naming the file, option or record, never a traceback."""
    import duckdb

    from curation.catalog import CatalogError
    from vlmr1.shards import ShardError
    from vlmr1.yamlfiles import ConfigError

    return (
        ValueError, FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
        ShardError, ConfigError, CatalogError, duckdb.IOException,
    )  # fmt: skip


class Interrupted(BaseException):
    """Ctrl-C. ``run``'s SIGINT handler raises it instead of KeyboardInterrupt, so neither click (a blank line,
    exit 1) nor a per-file ``except Exception`` takes it; a command re-raises it with how far it got."""


def _interrupt(signum, frame) -> None:
    raise Interrupted("interrupted; the same command goes on from where it stopped")


def run() -> None:
    """The ``vlmr1`` entry point: the typer app, with user errors printed as one line. Exit codes: 1 a command
    that could not do what it was asked (or a bug of ours), 2 a mistake in an option or file, 3 a catalog another
    process holds, 130 interrupted (Ctrl-C)."""
    import signal

    from curation.catalog import CatalogBusy
    from vlmr1.rollout.openai_engine import EngineError
    from vlmr1.rollout.vllm_options import VLLMError

    signal.signal(signal.SIGINT, _interrupt)
    if "--debug" in sys.argv[1:2]:  # a global option: right after `vlmr1`
        app()
        return
    try:
        app()
    except Interrupted as exc:
        typer.echo(str(exc), err=True)
        raise SystemExit(130) from None
    except CatalogBusy as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(3) from None
    except (VLLMError, EngineError) as exc:  # an engine that could not start or died: its log's tail is the news
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    except _user_errors() as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        typer.echo(f"error: {lines[0]}" + (f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""), err=True)
        raise SystemExit(2) from None
    except Exception as exc:  # noqa: BLE001 (a bug of ours: one line and how to see more, not 60 lines of frames)
        first = (str(exc).strip().splitlines() or [""])[0]
        typer.echo(
            f"internal error: {type(exc).__name__}: {first} (run `vlmr1 --debug ...` for the traceback)", err=True
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    run()
