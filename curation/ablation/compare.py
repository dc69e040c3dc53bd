"""An ablation's comparison: per-arm intervals, paired differences with verdicts, controls, curves; one JSON-able
dict (``compare``) that the report (``curation.ablation.report``) draws and the flow publishes."""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.ablation.arms import Comparison
from curation.ablation.outcomes import ALL, split_outcomes
from curation.ablation.stats import arm_interval, difference_interval, verdict

PRIMARY = {"rec": "acc@0.5", "ovd": "mAP"}  # the metric a verdict is about, per task


@dataclass
class ArmResult:
    """One arm after training and evaluation: each seed's results JSON and reward curve, and its pool."""

    name: str
    recipe: str
    seeds: list[int]
    pool_size: int
    leaked: int
    results: list[dict]
    curves: list[list[dict]] = field(default_factory=list)  # per seed: [{"step", "reward_mean", ...}]
    checkpoints: list[list[dict]] = field(default_factory=list)  # per seed: [{"step", "<split>/<task>": {...}}]


def compare(arms: list[ArmResult], comparisons: list[Comparison], eval_rows: list[dict], n_boot: int = 2000) -> dict:
    """Arm intervals and pair verdicts for every split and metric; controls checked on each task's primary
    metric."""
    outcomes = {a.name: split_outcomes(a.results, eval_rows) for a in arms}
    arm_rows = []
    for a in arms:
        for key, metrics in outcomes[a.name].items():
            for metric, o in metrics.items():
                ci = arm_interval(o, n_boot)
                arm_rows.append(
                    {"arm": a.name, "recipe": a.recipe, "split": key.rsplit("/", 1)[0], "task": key.rsplit("/", 1)[1],
                     "metric": metric, "value": ci.point, "low": ci.low, "high": ci.high, "seeds": len(a.seeds),
                     "n": o.n_samples, "pool_size": a.pool_size, "leaked": a.leaked}
                )  # fmt: skip
    pair_rows = []
    for c in comparisons:
        for key, metrics in outcomes[c.a].items():
            task = key.rsplit("/", 1)[1]
            for metric, o in metrics.items():
                diff = difference_interval(o, outcomes[c.b][key][metric], n_boot)
                detected = diff.excludes_zero()
                primary = metric == PRIMARY[task]
                pair_rows.append(
                    {"a": c.a, "b": c.b, "split": key.rsplit("/", 1)[0], "task": task, "metric": metric,
                     "difference": diff.point, "low": diff.low, "high": diff.high, "verdict": verdict(c.a, c.b, diff),
                     "control": c.control or "", "control_passed": c.passed(detected) if primary else None}
                )  # fmt: skip
    return {
        "arms": arm_rows,
        "pairs": pair_rows,
        "curves": {a.name: a.curves for a in arms},
        "checkpoints": {a.name: a.checkpoints for a in arms},
        "controls": _controls(pair_rows),
        "bootstrap": {"replicates": n_boot, "levels": "seeds, then evaluation samples (shared within a pair)"},
    }


def curve_point(step: int, results: dict) -> dict:
    """One point of an evaluation curve: each task's primary metric over all evaluation splits (REC: exact
    Acc@0.5 over every REC sample; OVD: the splits' mAP weighted by their image counts)."""
    point: dict = {"step": step}
    for task, metric in PRIMARY.items():
        ms = [m for m in results["metrics"].values() if m["task"] == task and m.get(metric) is not None]
        if ms:
            point[task] = sum(m[metric] * m["n"] for m in ms) / sum(m["n"] for m in ms)
    return point


def _controls(pair_rows: list[dict]) -> list[dict]:
    """One line per control and task: what it must show, what it showed, passed or not; judged on all evaluation
    splits pooled when there are several (per-split rows stay in the verdicts)."""
    out = []
    pooled = {(r["a"], r["b"], r["control"], r["task"]) for r in pair_rows if r["split"] == ALL}
    for r in pair_rows:
        if (r["a"], r["b"], r["control"], r["task"]) in pooled and r["split"] != ALL:
            continue
        if r["control"] and r["control_passed"] is not None:
            must = "a difference" if r["control"] == "positive" else "no difference"
            out.append(
                {"control": r["control"], "pair": f"{r['a']} vs {r['b']}", "split": r["split"], "metric": r["metric"],
                 "must_show": must, "verdict": r["verdict"], "passed": r["control_passed"]}
            )  # fmt: skip
    return out
