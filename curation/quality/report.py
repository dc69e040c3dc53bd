"""The funnel as a person wants to see it: a markdown table and a PNG bar chart, written next to the catalog."""

from __future__ import annotations

from pathlib import Path

from curation.quality.apply import QualityResult, RecipeDiff
from vlmr1.report import StageReport


def funnel_markdown(r: QualityResult) -> str:
    lines = [
        f"# Quality funnel: {r.recipe.name} ({r.recipe_hash})",
        "",
        f"{r.total} samples, of which {r.eval_samples} are evaluation samples (never selected for training). "
        f"{r.kept} kept after the drop rules.",
        "",
        "| rule | action | flagged | unique to this rule | kept after |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [f"| {f.rule} | {f.action} | {f.flagged} | {f.unique} | {f.kept_after} |" for f in r.funnel]
    lines += [
        "",
        "Seconds per feature group: " + ", ".join(f"{k} {v:.2f}" for k, v in r.seconds_features.items()),
        "Seconds per rule: " + ", ".join(f"{k} {v:.3f}" for k, v in r.seconds_rules.items()),
    ]
    return "\n".join(lines) + "\n"


def funnel_png(r: QualityResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f.rule + (" (flag)" if f.action == "flag" else "") for f in r.funnel]
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(len(names), 1) + 1.8))
    y = list(range(len(names)))
    ax.barh(y, [f.kept_after for f in r.funnel], color="#c9d9ec", label="kept after this rule")
    ax.barh(y, [f.flagged for f in r.funnel], color="#d9534f", label="flagged by this rule")
    ax.barh(y, [f.unique for f in r.funnel], color="#7a1f1d", label="flagged by this rule only")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("samples")
    ax.set_title(f"{r.recipe.name} ({r.recipe_hash}): {r.total} -> {r.kept} samples")
    fig.legend(loc="lower center", ncol=3, fontsize=8, frameon=False)  # under the plot, never over a bar
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_quality_report(r: QualityResult, out_dir: Path) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, png = out_dir / "funnel.md", out_dir / "funnel.png"
    md.write_text(funnel_markdown(r))
    funnel_png(r, png)
    return {"quality report": str(md), "quality plot": str(png)}


def diff_markdown(d: RecipeDiff) -> str:
    a, b = d.a.recipe.name, d.b.recipe.name
    lines = [
        f"# Recipes {a} ({d.a.recipe_hash}) vs {b} ({d.b.recipe_hash})",
        "",
        f"{a} keeps {d.a.kept}, {b} keeps {d.b.kept} of {d.a.total}.",
        "",
        "| dropped only by | rule | samples |",
        "|---|---|---:|",
    ]
    lines += [f"| {a} | {rule} | {n} |" for rule, n in d.only_a_drops.items()]
    lines += [f"| {b} | {rule} | {n} |" for rule, n in d.only_b_drops.items()]
    if d.examples:
        lines += ["", "| sample_id | dropped by | rules |", "|---|---|---|"] + [
            f"| {s} | {who} | {rules} |" for s, who, rules in d.examples
        ]
    return "\n".join(lines) + "\n"


def write_diff(d: RecipeDiff, folder: Path) -> StageReport:
    """The diff as ``diff.md`` in ``folder`` and as a report: a table of rules, one of example samples."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "diff.md").write_text(diff_markdown(d))
    a, b = d.a.recipe.name, d.b.recipe.name
    rules = [{"dropped only by": a, "rule": r, "samples": n} for r, n in d.only_a_drops.items()]
    rules += [{"dropped only by": b, "rule": r, "samples": n} for r, n in d.only_b_drops.items()]
    examples = [{"sample_id": s, "dropped by": who, "rules": rules} for s, who, rules in d.examples]
    counts = {f"{a} keeps": d.a.kept, f"{b} keeps": d.b.kept, "samples": d.a.total}
    return StageReport(
        "quality",
        f"recipes {a} ({d.a.recipe_hash}) vs {b} ({d.b.recipe_hash})",
        counts,
        tables={"disagreements": rules, "examples": examples},
        files={"diff": str(folder / "diff.md")},
    )
