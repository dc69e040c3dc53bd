"""One report shape for every stage: the CLI prints it, the flows publish it as artifacts, markdown renders it.

Stages keep their domain results (``IngestSummary``, ``QualityResult``, ``ScoreSummary``, ``Selection``, ...),
and each has ``report()`` giving a ``StageReport``: headline counts, funnel steps, tables, timings and the
files it wrote. Nothing downstream re-flattens a domain result by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StageReport:
    stage: str  # ingest | quality | score | select | shard | train | evaluate
    title: str
    counts: dict[str, object] = field(default_factory=dict)  # headline numbers and identifiers
    funnel: list[tuple[str, int]] = field(default_factory=list)  # (step, samples left after it)
    tables: dict[str, list[dict]] = field(default_factory=dict)  # name -> rows
    timings: dict[str, float] = field(default_factory=dict)  # seconds per part
    files: dict[str, str] = field(default_factory=dict)  # what -> path
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain JSON data (``vlmr1 --report FILE`` writes one per command)."""
        from dataclasses import asdict

        return asdict(self)

    def table(self, name: str) -> list[dict]:
        """Rows of ``name`` with the same keys in the same order (the union, None where a row has none): a UI
        that takes its columns from the first row then shows every column."""
        rows = self.tables.get(name, [])
        keys = list(dict.fromkeys(k for r in rows for k in r))
        return [{k: r.get(k) for k in keys} for r in rows]

    def summary_row(self) -> dict:
        """One flat row for a table of stages: counts, total seconds and files."""
        return {
            "stage": self.stage,
            "title": self.title,
            **{k: _cell(v) for k, v in self.counts.items()},
            "seconds": round(self.timings.get("total", sum(self.timings.values())), 3),
            **self.files,
        }

    def to_markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        if self.counts:
            lines += (
                ["| what | value |", "|---|---:|"] + [f"| {k} | {_cell(v)} |" for k, v in self.counts.items()] + [""]
            )
        if self.funnel:
            lines += ["| step | samples |", "|---|---:|"] + [f"| {s} | {n} |" for s, n in self.funnel] + [""]
        for name in self.tables:
            rows = self.table(name)
            if rows:
                keys = list(rows[0])
                lines += [f"**{name}**", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
                lines += ["| " + " | ".join(_cell(r[k]) for k in keys) + " |" for r in rows] + [""]
        if self.timings:
            lines += ["Seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in self.timings.items()), ""]
        lines += [f"- {k}: `{v}`" for k, v in self.files.items()] + [f"- {n}" for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def print_report(report: StageReport, console=None) -> None:
    """The report on a terminal: a counts table, the funnel, each table, then the files written."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    from rich.text import Text

    console.print(Text(report.title, style="bold"), soft_wrap=True)  # whole, never wrapped to a table's width
    if report.counts:
        t = Table("what", "value")
        for k, v in report.counts.items():
            t.add_row(k, _cell(v))
        console.print(t)
    if report.funnel:
        t = Table("step", "samples", title="funnel")
        for step, n in report.funnel:
            t.add_row(step, str(n))
        console.print(t)
    for name in report.tables:
        rows = report.table(name)
        if rows:
            t = Table(*rows[0], title=name)
            for r in rows:
                t.add_row(*(_cell(v) for v in r.values()))
            console.print(t)
    warn = Console(stderr=True)
    for note in report.notes:  # whole lines, never wrapped; warnings on stderr
        (warn if note.startswith("warning: ") else console).print(note, soft_wrap=True, markup=False)
    if report.files:
        console.print("written: " + ", ".join(str(v) for v in report.files.values()))
