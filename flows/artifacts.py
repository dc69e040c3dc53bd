"""Prefect artifacts from a ``StageReport``: published by each task when its stage ends, every column shown."""

from __future__ import annotations

from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from vlmr1.report import StageReport


def publish(report: StageReport, prefix: str | None = None, part: str | None = None) -> None:
    """The report as markdown, plus one table artifact per table (rows share their keys, so no column hides).

    Keys are ``<flow name>-<stage>[-<part>][-<table>]``: ``part`` tells apart the runs of one stage in a flow (the
    file an ingest read, the shard set), so no artifact replaces another's on the Artifacts page."""
    if prefix is None:
        from prefect.runtime import flow_run

        prefix = flow_run.flow_name or "vlmr1"
    key = f"{prefix}-{report.stage}" + (f"-{_slug(part)}" if part else "")
    create_markdown_artifact(key=key, markdown=report.to_markdown(), description=report.title)
    for name in report.tables:
        rows = report.table(name)
        if rows:
            create_table_artifact(key=f"{key}-{_slug(name)}", table=rows, description=f"{report.title}: {name}")
    for what, path in report.files.items():
        if str(path).endswith(".png") and Path(path).is_file():
            publish_image(path, f"{key}-{_slug(what)}", f"{report.title}: {what} ({path})")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def publish_image(png: str, key: str, description: str) -> None:
    """A PNG as a markdown artifact that shows it: the picture travels as a data URL (no file server, outlives the
    worker's disk) inside the markdown, so lists and sidebars show the description, never the URL's base64 text (an
    image artifact's data is its URL, and the UI printed all of it)."""
    import base64

    data = base64.b64encode(Path(png).read_bytes()).decode()
    markdown = f"![{description}](data:image/png;base64,{data})\n\n`{png}`\n"
    create_markdown_artifact(key=key, markdown=markdown, description=description)


def publish_comparison(comparison: dict, files: dict[str, str]) -> None:
    """An ablation's comparison: the plot, the report, and one table per task for arms and for pairs (a REC
    table never carries OVD columns), plus the controls."""
    publish_image(
        files["plot"], "ablation-comparison-plot", f"per-arm intervals, paired differences, curves; {files['plot']}"
    )
    create_markdown_artifact(key="ablation-comparison-md", markdown=Path(files["markdown"]).read_text(),
                             description=files["markdown"])  # fmt: skip
    for what in ("arms", "pairs"):
        for task in ("rec", "ovd"):
            rows = [r for r in comparison[what] if r["task"] == task]
            if rows:
                create_table_artifact(key=f"ablation-{what}-{task}", table=rows,
                                      description=f"{what}, {task.upper()} metrics, 95% intervals")  # fmt: skip
    if comparison["controls"]:
        create_table_artifact(key="ablation-controls", table=comparison["controls"], description="controls")
