"""The ablation report a person reads: ``comparison.md`` (tables, verdicts, controls) and ``comparison.png`` (per
task: each arm's primary metric with its 95% interval; the paired differences; reward curves with seed bands;
the data-scaling curve when there is one). A REC metric is never drawn for an OVD split, nor the reverse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from curation.ablation.compare import PRIMARY

TASK_TITLE = {"rec": "REC (Acc@0.5)", "ovd": "OVD (dataset mAP)"}
SMOOTH = 5


def write_report(comparison: dict, out: Path, title: str = "ablation") -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(comparison, indent=2))
    md = out / "comparison.md"
    md.write_text(markdown(comparison, title))
    png = out / "comparison.png"
    plot(comparison, png, title)
    return {"markdown": str(md), "plot": str(png), "json": str(out / "comparison.json")}


def _fmt(v) -> str:
    return "" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _table(rows: list[dict], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return lines


def markdown(c: dict, title: str) -> str:
    lines = [f"# {title}", ""]
    if c["controls"]:
        lines += ["## Controls", ""]
        lines += _table(
            [{**r, "passed": "yes" if r["passed"] else "**NO**"} for r in c["controls"]],
            ["control", "pair", "split", "metric", "must_show", "verdict", "passed"],
        )
        lines.append("")
    lines += ["## Verdicts (difference a - b, 95% interval over seeds and evaluation samples)", ""]
    pairs = [{**r, "interval": f"[{r['low']:.3f}, {r['high']:.3f}]"} for r in c["pairs"]]
    lines += _table(pairs, ["a", "b", "split", "task", "metric", "difference", "interval", "verdict"])
    lines += ["", "## Arms (mean over seeds, 95% interval)", ""]
    arms = [{**r, "interval": f"[{r['low']:.3f}, {r['high']:.3f}]"} for r in c["arms"]]
    lines += _table(arms, ["arm", "recipe", "split", "task", "metric", "value", "interval", "seeds", "n", "pool_size",
                           "leaked"])  # fmt: skip
    leaks = sorted({(r["arm"], r["leaked"]) for r in c["arms"] if r["leaked"]})
    if leaks:
        lines += ["", "Leakage: " + "; ".join(f"{a} trained on {n} samples of evaluation images" for a, n in leaks)
                  + " (its numbers are inflated by that)."]  # fmt: skip
    lines += ["", f"Bootstrap: {c['bootstrap']['replicates']} replicates; {c['bootstrap']['levels']}.", ""]
    return "\n".join(lines)


def plot(c: dict, png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in ("rec", "ovd") if any(r["task"] == t for r in c["arms"])]
    scaling = sorted({r["pool_size"] for r in c["arms"] if "@" in r["arm"]})
    evals = any(len(points) > 1 for per_seed in c["checkpoints"].values() for points in per_seed)
    panels = [("bars", t) for t in tasks] + [("pairs", None), ("curves", None)]
    panels += [("evals", t) for t in tasks if evals] + ([("scaling", None)] if scaling else [])
    cols = 2
    rows = (len(panels) + 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(13, 4.6 * rows), squeeze=False)
    for ax, (kind, task) in zip(axes.flat, panels):
        {"bars": _bars, "pairs": _pairs, "curves": _curves, "evals": _evals, "scaling": _scaling}[kind](ax, c, task)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: mean over seeds, 95% bootstrap intervals (seeds x evaluation samples)", fontsize=12)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def _bars(ax, c: dict, task: str) -> None:
    metric = PRIMARY[task]
    rows = [r for r in c["arms"] if r["task"] == task and r["metric"] == metric]
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    splits = list(dict.fromkeys(r["split"] for r in rows))
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        got = {r["split"]: r for r in rows if r["arm"] == arm}
        x = np.arange(len(splits)) + i * width
        v = np.array([got[s]["value"] for s in splits])
        err = np.array([[got[s]["value"] - got[s]["low"], got[s]["high"] - got[s]["value"]] for s in splits]).T
        ax.bar(x, v, width, yerr=err, capsize=4, label=f"{arm} ({got[splits[0]]['seeds']} seeds)")
    ax.set_xticks(np.arange(len(splits)) + width * (len(arms) - 1) / 2, splits, fontsize=10)
    ax.set_ylim(0, max([r["high"] for r in rows] + [0.01]) * 1.3)  # room for the legend above the whiskers
    ax.set_ylabel(metric, fontsize=11)
    ax.set_xlabel("evaluation split", fontsize=11)
    ax.set_title(TASK_TITLE[task], fontsize=12)
    ax.legend(fontsize=9, loc="upper center", ncol=2)


def _pairs(ax, c: dict, _task) -> None:
    rows = [r for r in c["pairs"] if r["metric"] == PRIMARY[r["task"]]]
    if any(r["split"] == "all" for r in rows):  # pooled splits when there are several; per split in the markdown
        rows = [r for r in rows if r["split"] == "all"]
    colours = {"positive": "tab:green", "negative": "tab:gray", "": "tab:blue"}
    for y, r in enumerate(rows):
        ax.errorbar(r["difference"], y, xerr=[[r["difference"] - r["low"]], [r["high"] - r["difference"]]],
                    fmt="o", capsize=4, color=colours[r["control"]])  # fmt: skip
    ax.axvline(0, color="black", lw=0.8)
    labels = [f"{r['a']} - {r['b']}\n{r['split']} {r['metric']}" + (f" ({r['control']} control)" if r["control"]
              else "") for r in rows]  # fmt: skip
    ax.set_yticks(range(len(rows)), labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("difference a - b (95% interval)", fontsize=11)
    ax.set_title("paired differences: an interval off 0 is an effect", fontsize=12)


def _curves(ax, c: dict, _task) -> None:
    for arm, per_seed in c["curves"].items():
        steps = sorted({p["step"] for curve in per_seed for p in curve})
        if not steps:
            continue
        m = np.array([[next((p["reward_mean"] for p in curve if p["step"] == s), np.nan) for s in steps]
                      for curve in per_seed])  # fmt: skip
        m = np.apply_along_axis(_smooth, 1, m)
        ax.plot(steps, np.nanmean(m, 0), label=arm)
        ax.fill_between(steps, np.nanmin(m, 0), np.nanmax(m, 0), alpha=0.2)
    ax.set_xlabel("training step", fontsize=11)
    ax.set_ylabel("mean reward (sum of rewards)", fontsize=11)
    ax.set_title(f"training reward ({SMOOTH}-step mean): mean over seeds, band = min..max seed", fontsize=12)
    ax.legend(fontsize=9)


def _evals(ax, c: dict, task: str) -> None:
    for arm, per_seed in c["checkpoints"].items():
        steps = sorted({p["step"] for points in per_seed for p in points if task in p})
        m = np.array([[next((p[task] for p in points if p["step"] == s and task in p), np.nan) for s in steps]
                      for points in per_seed])  # fmt: skip
        if not steps:
            continue
        ax.plot(steps, np.nanmean(m, 0), marker="o", label=arm)
        ax.fill_between(steps, np.nanmin(m, 0), np.nanmax(m, 0), alpha=0.2)
    ax.set_xlabel("training step (0: the start model)", fontsize=11)
    ax.set_ylabel(f"{PRIMARY[task]}, all evaluation splits", fontsize=11)
    ax.set_title(f"{TASK_TITLE[task]} during training (band: min..max seed)", fontsize=12)
    ax.legend(fontsize=9)


def _smooth(v: np.ndarray) -> np.ndarray:
    """A trailing mean over ``SMOOTH`` steps (fewer at the start): per-step GRPO rewards are too noisy to read."""
    c = np.cumsum(np.insert(np.nan_to_num(v), 0, 0.0))
    n = np.minimum(np.arange(1, len(v) + 1), SMOOTH)
    return (c[1:] - c[np.arange(1, len(v) + 1) - n]) / n


def _scaling(ax, c: dict, _task) -> None:
    for task in ("rec", "ovd"):
        metric = PRIMARY[task]
        rows = sorted((r for r in c["arms"] if "@" in r["arm"] and r["task"] == task and r["metric"] == metric),
                      key=lambda r: r["pool_size"])  # fmt: skip
        for split in dict.fromkeys(r["split"] for r in rows):
            pts = [r for r in rows if r["split"] == split]
            x = [r["pool_size"] for r in pts]
            ax.errorbar(
                x,
                [r["value"] for r in pts],
                yerr=[[r["value"] - r["low"] for r in pts], [r["high"] - r["value"] for r in pts]],
                marker="o",
                capsize=4,
                label=f"{split} {metric}",
            )
    ax.set_xscale("log")
    ax.set_xlabel("pool size (samples, same training budget)", fontsize=11)
    ax.set_ylabel("metric", fontsize=11)
    ax.set_title("data scaling", fontsize=12)
    ax.legend(fontsize=9)
