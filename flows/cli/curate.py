"""``vlmr1 quality | score | shard | export``: parse, call the stage, print its report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from flows.cli.options import ExistingCatalogOpt, RayAddressOpt, existing, progress, ray_spec, show
from vlmr1.errors import Interrupted


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
    from curation.quality.recipe import load_recipe
    from flows import stages

    existing(catalog)
    if diff:
        show(stages.quality_diff(catalog, load_recipe(diff[0]), load_recipe(diff[1]), out))
        return
    if recipe is None:
        raise ValueError("give a RECIPE, or --diff A B")
    show(stages.quality(catalog, load_recipe(recipe), out))


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
    adaptive: bool = typer.Option(
        False,
        "--adaptive",
        help="Roll out in rounds; stop each sample when more could not change its band or GRPO "
        "signal (k is then the most; the config's adaptive block sets how).",
    ),
    ray: bool = typer.Option(False, "--ray", help="Score on Ray: a local cluster, or --ray-address's."),
    ray_address: Optional[str] = RayAddressOpt,
    ray_actors: Optional[int] = typer.Option(None, help="Engines in the Ray actor pool; implies --ray."),
) -> None:
    """Difficulty by pass@k: k rollouts per sample, rewards, pass rates; resumable, never scores a sample twice."""
    from curation.difficulty.config import scorer_config
    from curation.quality.recipe import load_recipe
    from flows import stages

    existing(catalog)
    r = load_recipe(recipe)
    overrides = {"engine": {"model": model, "kind": engine, "base_url": base_url},
                 "sampling": {"n": k, "max_new_tokens": max_new_tokens}}  # fmt: skip
    if adaptive:
        overrides["adaptive"] = {}  # the config's block, or the defaults
    cfg = scorer_config(config, overrides, ray_spec(ray, ray_address, ray_actors))
    with progress("scoring") as update:
        try:
            report = stages.score(catalog, r, cfg, limit=limit, progress=update)
        except Interrupted:
            s = update.last
            done = f"{s.partitions_merged} of {s.partitions} partitions merged" if s else "no partition merged yet"
            raise Interrupted(f"interrupted: {done}; the same command resumes") from None
    show(report)


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
    from curation.quality.recipe import load_recipe
    from flows import stages

    existing(catalog)
    loaded = [load_recipe(r) for r in recipes]
    pool = "eval" if eval_pool else "train"
    show(stages.shard(catalog, loaded, out, scorer=scorer, pool=pool, embed_images=embed_images,
                      equal_size=equal_size, template=template))  # fmt: skip


def export(
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
    from flows import stages

    show(stages.export(shards, to, out, embed_images=embed_images, verify_images=verify_images, overwrite=overwrite))


def register(app: typer.Typer) -> None:
    for command in (quality, score, shard):
        app.command()(command)
    app.command("export")(export)
