"""``vlmr1 train | record | eval | reprofile | lineage``: parse, call the stage, print its report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from flows.cli.options import existing, show

CatalogFileOpt = typer.Option(..., "--catalog", help="The DuckDB catalog file (`vlmr1 ingest` creates it).")


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
    from flows import stages
    from training.launch import LaunchSpec

    spec = LaunchSpec(str(config), str(manifest), str(output), nprocs, launcher, num_machines, machine_rank,
                      main_address, resume=resume)  # fmt: skip
    show(stages.train(spec, overwrite=overwrite, timeout=timeout, on_line=typer.echo, catalog=catalog))


def record(
    output: Path = typer.Argument(..., help="A finished training output folder (train_result.json, reward log)."),
    manifest: Path = typer.Option(..., "--manifest", help="The shards it trained on."),
    config: Path = typer.Option(..., "--config", exists=True, dir_okay=False, help="Its training config."),
    catalog: Path = CatalogFileOpt,
) -> None:
    """Merge a finished training run (lineage, per-sample rewards) into the catalog; merging twice changes nothing."""
    from flows import stages
    from training.config import load_config

    existing(catalog)
    show(stages.record(catalog, manifest, output, load_config(config).model))


def eval_cmd(
    checkpoint: Path = typer.Argument(..., exists=True, file_okay=False, help="A model folder (e.g. OUTPUT/final)."),
    data: list[Path] = typer.Option(..., "--data", help="Evaluation shard folder(s) (`vlmr1 shard ... --eval`)."),
    config: Optional[Path] = typer.Option(
        None, "--config", help="The training config: answers as long as its max_completion_length, its template."
    ),
    engine: str = typer.Option("hf", "--engine", help="hf | vllm | vllm-server | openai (a served checkpoint)"),
    base_url: Optional[str] = typer.Option(None, help="openai: the server's URL."),
    max_new_tokens: Optional[int] = typer.Option(
        None, help="Greedy decoding's length limit (default: the training config's max_completion_length)."
    ),
    template: Optional[str] = typer.Option(None, help="Prompt template (default: the training config's)."),
    catalog: Optional[Path] = typer.Option(
        None, "--catalog", help="Also record the metrics in this catalog's evaluations table."
    ),
    run_name: str = typer.Option("cli", "--run"),
) -> None:
    """Greedy evaluation: REC Acc@0.5 / mean IoU per split, OVD dataset-level COCO mAP / AP50."""
    from flows import stages
    from training.evaluate import EvalConfig
    from vlmr1.yamlfiles import validate_options

    spec = {"kind": engine} | ({"base_url": base_url} if base_url else {})
    options = {"engine": spec, "max_new_tokens": max_new_tokens, "template": template}
    cfg = validate_options(EvalConfig, options, "evaluation option")
    show(stages.evaluate(checkpoint, data, cfg, train_config=config, catalog=catalog, run=run_name))


def reprofile(
    base: str = typer.Option(..., "--base", help="Scorer key of the base model's difficulty."),
    current: str = typer.Option(..., "--current", help="Scorer key of the trained checkpoint's difficulty."),
    catalog: Path = CatalogFileOpt,
    out: Optional[Path] = typer.Option(
        None, "--out", help="reprofile.md and reprofile.png go here (default: reports/reprofile/ beside the catalog)."
    ),
) -> None:
    """Base vs current pass rate per sample: how many moved band, by source, task and category."""
    from flows import stages

    show(stages.reprofile(existing(catalog), base, current, out))


def lineage(
    checkpoint: Path = typer.Argument(..., help="A model folder a recorded run produced (e.g. OUTPUT/final)."),
    catalog: Path = CatalogFileOpt,
    samples: bool = typer.Option(False, "--samples", help="Also list every sample that trained it."),
) -> None:
    """Which runs, shards, recipes, scorers and samples made a checkpoint (its run and every parent run)."""
    from rich.console import Console

    from curation.feedback.runs import lineage_report, trained_samples

    report = lineage_report(existing(catalog), checkpoint)
    show(report, Console(width=250))
    if samples:
        ids = trained_samples(catalog, checkpoint)
        typer.echo(f"{len(ids)} samples trained {checkpoint}:")
        typer.echo("\n".join(ids))


def register(app: typer.Typer) -> None:
    for command in (train, record, reprofile, lineage):
        app.command()(command)
    app.command("eval")(eval_cmd)
