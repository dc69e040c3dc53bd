"""Per-sample evaluation results of an arm's seeds (``training.evaluate`` JSON, ``samples``) as ``Outcomes`` per
split and metric, aligned on the same evaluation samples for every arm and seed."""

from __future__ import annotations

import numpy as np

from curation.ablation.stats import OVD_METRICS, REC_METRICS, Outcomes
from vlmr1.boxes import BoxFrame
from vlmr1.rewards import RewardBatch, dataset_map

ALL = "all"  # every evaluation split of a task pooled: the most power, what the controls are judged on


def split_outcomes(results: list[dict], eval_rows: list[dict]) -> dict[str, dict[str, Outcomes]]:
    """``{"<split>/<task>": {metric: Outcomes}}`` from one arm's results, one per seed, over ``eval_rows``; with
    several splits also ``"all/<task>"`` (REC: every REC sample; OVD: one dataset-level AP over all images)."""
    ids = [r["sample_id"] for r in eval_rows]
    for res in results:
        got = [s["sample_id"] for s in res["samples"]]
        if got != ids:
            raise ValueError(f"{res.get('checkpoint')}: evaluated on other samples than the evaluation set")
    out: dict[str, dict[str, Outcomes]] = {}
    splits = sorted({r["split"] for r in eval_rows})
    for split in [*splits, ALL] if len(splits) > 1 else splits:
        for task in ("rec", "ovd"):
            rows = [i for i, r in enumerate(eval_rows) if split in (r["split"], ALL) and r["task"] == task]
            if not rows:
                continue
            if task == "rec":
                hit = [[res["samples"][i]["hit"] for i in rows] for res in results]
                iou = [[res["samples"][i]["iou"] for i in rows] for res in results]
                out[f"{split}/rec"] = {"acc@0.5": Outcomes.per_sample(hit), "mean_iou": Outcomes.per_sample(iou)}
            else:
                out[f"{split}/ovd"] = _ovd(results, eval_rows, rows)
    return out


def _ovd(results: list[dict], eval_rows: list[dict], rows: list[int]) -> dict[str, Outcomes]:
    """Dataset-level mAP / AP50 of each seed over any resampled list of the split's images."""
    batches = []
    for res in results:
        f = res["family"]
        frame = BoxFrame(f["frame"], min_pixels=f["min_pixels"], max_pixels=f["max_pixels"], factor=f["factor"])
        completions = [res["samples"][i]["completion"] for i in rows]
        batches.append(RewardBatch.from_rows(completions, [eval_rows[i] for i in rows], frame))

    def metric(which: int):
        def of(seed: int, idx: np.ndarray) -> float:
            value = dataset_map(batches[seed], idx)[which]
            return float("nan") if value is None else float(value)

        return of

    return {m: Outcomes(metric_of=metric(k), n_seeds=len(results), n_samples=len(rows)) for k, m in
            enumerate(OVD_METRICS)}  # fmt: skip


__all__ = ["ALL", "split_outcomes", "REC_METRICS", "OVD_METRICS"]
