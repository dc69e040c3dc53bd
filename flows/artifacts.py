"""Prefect artifacts from a ``StageReport``: published by each task when its stage ends, every column shown."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from vlmr1.report import StageReport


def publish(report: StageReport, prefix: str | None = None) -> None:
    """The report as markdown, plus one table artifact per table (rows share their keys, so no column hides).

    Keys are ``<flow name>-<stage>[-<table>]``."""
    if prefix is None:
        from prefect.runtime import flow_run

        prefix = flow_run.flow_name or "vlmr1"
    key = f"{prefix}-{report.stage}"
    create_markdown_artifact(key=key, markdown=report.to_markdown(), description=report.title)
    for name in report.tables:
        rows = report.table(name)
        if rows:
            slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
            create_table_artifact(key=f"{key}-{slug}", table=rows, description=f"{report.title}: {name}")
