"""Evaluation with greedy decoding through the same rollout engines and family adapter as scoring.

REC: Acc@0.5 and mean IoU per split. OVD: dataset-level COCO mAP and AP50
over all images of a split at once (what one COCOeval over the split gives),
not an average of per-image scores. Every number comes from ``vlmr1.rewards``
(the same parse, frames and AP kernel as the training rewards), so evaluation
and reward cannot disagree. VLM answers carry no confidence: every box
scores 1.0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from training.config import TrainConfig
from vlmr1.families import Family
from vlmr1.prompts import DEFAULT_TEMPLATE, build_messages
from vlmr1.report import StageReport
from vlmr1.rewards import DEFAULT_DIALECT, RewardBatch, dataset_map, score
from vlmr1.rollout.base import Engine, Request, Sampling
from vlmr1.rollout.spec import EngineSpec


class EvalConfig(BaseModel):
    """How both faces (and the ablation) evaluate: greedy decoding on an engine of the user's choice, as long as
    training let an answer be (an OVD answer with a few boxes is well over 48 tokens: a cut answer scores 0)."""

    model_config = ConfigDict(extra="forbid")
    engine: EngineSpec = Field(default_factory=EngineSpec, description="its model is the checkpoint evaluated")
    max_new_tokens: int | None = Field(None, ge=1, description="default: the training config's max_completion_length")
    template: str | None = Field(None, description="default: the training config's template")

    def resolved(self, checkpoint: str | Path, train: TrainConfig | None = None) -> tuple[EngineSpec, Sampling, str]:
        """The engine spec for ``checkpoint``, the greedy sampler and the template, defaults filled from ``train``
        (or, without one, from the training config's own defaults)."""
        fields = TrainConfig.model_fields
        length = self.max_new_tokens or (train.max_completion_length if train else None)
        length = length or fields["max_completion_length"].default
        template = self.template or (train.template if train else DEFAULT_TEMPLATE)
        engine = self.engine.model_copy(update={"model": str(checkpoint)})
        return engine, Sampling.greedy(length), template


def shards_dialect(path: str | Path) -> str:
    """The reward dialect the shards' labels were scored in: evaluation uses it too."""
    from vlmr1.shards import manifest_dialect, read_manifest

    return manifest_dialect(read_manifest(path)[1])


def rows_from_shards(path: str | Path) -> list[dict]:
    from vlmr1.shards import load_table

    table, _ = load_table(path)
    return [
        {
            "task": r["task"],
            "problem": r["problem"],
            "solution": r["solution"],
            "width": r["width"],
            "height": r["height"],
            "split": f"{r['source']}:{r['split']}",
            "image": r["image"]["path"],
            "image_bytes": r["image"]["bytes"],
            "sample_id": r["sample_id"],
        }
        for r in table.to_pylist()
    ]


def _image(row: dict):
    import io

    from PIL import Image

    if row.get("image_bytes"):
        return Image.open(io.BytesIO(row["image_bytes"])).convert("RGB")
    with Image.open(row["image"]) as img:
        return img.convert("RGB")


def evaluate_model(
    engine: Engine,
    rows: list[dict],
    *,
    template: str = DEFAULT_TEMPLATE,
    sampling: Sampling | None = None,
    batch: int = 32,
    dialect: str = DEFAULT_DIALECT,
) -> dict:
    """Metrics per split (REC: acc@0.5, mean IoU; OVD: dataset-level mAP, AP50); greedy unless ``sampling``.

    REC metrics follow ``dialect`` (``vlmr1``: VLM-R1's evaluation, box inside ``{...}``, IoU > 0.5); OVD
    dataset-level AP always parses with our rules (VLM-R1 ships no dataset-level OVD evaluation to follow)."""
    sampling = sampling or Sampling.greedy()
    family: Family = engine.family
    completions: list[str] = []
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        requests = [Request([_image(r)], build_messages(r["task"], r["problem"], template)) for r in part]
        completions += [c[0].text for c in engine.generate(requests, sampling)]
    return {
        "metrics": split_metrics(rows, completions, family.frame(), dialect),
        "samples": per_sample(rows, completions, family.frame(), dialect),
        "dialect": dialect,
        "n": len(rows),
        "family": family.key(),
        "template": template,
    }


def split_metrics(rows: list[dict], completions: list[str], frame, dialect: str = DEFAULT_DIALECT) -> dict:
    """REC Acc@0.5 / mean IoU and OVD dataset-level mAP / AP50 per split, from the training rewards' own code."""
    rb = RewardBatch.from_rows(completions, rows, frame)
    iou, hit = score("iou", rb, dialect), score("hit@0.5", rb, dialect)
    out: dict = {}
    for split in sorted({r["split"] for r in rows}):
        rec = [i for i, r in enumerate(rows) if r["split"] == split and r["task"] == "rec"]
        ovd = [i for i, r in enumerate(rows) if r["split"] == split and r["task"] == "ovd"]
        if rec:
            out[f"{split}/rec"] = {
                "task": "rec",
                "n": len(rec),
                "acc@0.5": float(np.mean(hit[rec])),
                "mean_iou": float(np.mean(iou[rec])),
            }
        if ovd:
            m, ap50 = dataset_map(rb, ovd)
            out[f"{split}/ovd"] = {"task": "ovd", "n": len(ovd), "mAP": m, "AP50": ap50}
    return out


def per_sample(rows: list[dict], completions: list[str], frame, dialect: str = DEFAULT_DIALECT) -> list[dict]:
    """Each sample's completion, with its REC IoU and hit (None for OVD, whose AP exists only per dataset): what
    the ablation's bootstrap resamples."""
    rb = RewardBatch.from_rows(completions, rows, frame)
    iou, hit = score("iou", rb, dialect), score("hit@0.5", rb, dialect)
    rec = [r["task"] == "rec" for r in rows]
    return [
        {"sample_id": r.get("sample_id"), "split": r["split"], "task": r["task"], "completion": c,
         "iou": float(iou[i]) if rec[i] else None, "hit": float(hit[i]) if rec[i] else None}
        for i, (r, c) in enumerate(zip(rows, completions))
    ]  # fmt: skip


def evaluation_report(results: dict, path: str | Path | None = None, data: str | None = None) -> StageReport:
    """One table per task, so every row has the same columns (REC: Acc@0.5, mean IoU; OVD: mAP, AP50)."""
    tables: dict[str, list[dict]] = {}
    for key, m in results["metrics"].items():
        row = {"data": data, "split": key.rsplit("/", 1)[0], **{k: v for k, v in m.items() if k != "task"}}
        tables.setdefault(f"{m['task']} metrics", []).append(row)
    files = {"results": str(path)} if path else {}
    return StageReport("evaluate", "evaluation", {"samples": results["n"]}, tables=tables, files=files)


def write_results(results: dict, checkpoint: str | Path, name: str) -> Path:
    path = Path(checkpoint) / "eval" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**results, "checkpoint": str(checkpoint), "data": name}, indent=2, sort_keys=True))
    return path
