"""GRPO on curated shards: TRL ``GRPOTrainer`` with our rewards, DeepSpeed, checkpoints, per-sample reward log.

Run by ``training.launch`` (one or many processes) as
``python -m training.grpo --config C --manifest M --output O [--resume]``.
The manifest must have been made for this model family, template and resize
(``check_manifest``), or the run is refused before the model loads.

Every completion's reward, per reward function, is written during training
to ``reward_log/step-<n>-rank-<r>.parquet`` (rewritten if a resumed run
repeats a step); at the end rank 0 folds them into ``reward_log.parquet``:
one row per (sample_id, step) with the weighted reward's mean and std over
the sample's generations, the mean completion length and each reward's
mean. That file is the learning-progress signal the next curation round
reads (``curation.feedback.runs.record_run`` merges it into the catalog).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from training.config import TrainConfig, load_config
from training.outputs import checkpoints
from vlmr1.shards import ShardError, load, manifest_dialect, read_manifest


class ManifestMismatch(ShardError):
    """The shards were curated for another family, template or resize than this training config."""


def check_manifest(manifest: dict, cfg: TrainConfig) -> list[str]:
    """Refuse shards whose difficulty labels were measured under another adapter; return warnings for what cannot be
    checked."""
    from vlmr1.prompts import get_template

    warnings = []
    want = cfg.family_obj().key()
    have = manifest.get("family")
    if have is None:
        warnings.append(
            "the manifest has no scorer family (no difficulty band was applied): family and resize not checked"
        )
    elif have != want:
        raise ManifestMismatch(
            f"shards were scored for {have}, this training config is {want}: difficulty labels would not hold"
        )
    dialect = manifest_dialect(manifest)
    if cfg.dialect is not None and cfg.dialect != dialect:
        raise ManifestMismatch(
            f"shards were scored with the {dialect!r} reward dialect, this training config uses {cfg.dialect!r}: "
            "pass rates would describe another reward (leave dialect unset to use the shards')"
        )
    template = get_template(cfg.template).key()
    if manifest.get("template") != template:
        raise ManifestMismatch(
            f"shards use prompt template {manifest.get('template')!r}, this training config {template!r}"
        )
    return warnings + sampler_differences(manifest, cfg)


def sampler_differences(manifest: dict, cfg: TrainConfig) -> list[str]:
    """Where the scorer sampled differently from this training run: its pass rates then describe another
    policy's rollouts.

    A warning, not a refusal: scoring at another k or length is a deliberate
    trade; the run says so instead of letting the labels look exact.
    """
    sampling = ((manifest.get("scorer") or {}).get("sampling")) or {}
    if not sampling:
        return []
    training = {name: value for name, value in cfg.sampling().to_dict().items() if name != "seed"}
    return [
        f"difficulty was scored with {name}={sampling.get(name, 'unrecorded')!r}, training samples with "
        f"{name}={value!r}: "
        "pass rates describe another sampler"
        for name, value in training.items()
        if sampling.get(name) != value
    ]


class RewardLog:
    """Collects each reward function's values per completion; flushed per step and rank, folded at the end."""

    def __init__(self, folder: Path, rank: int):
        self.folder, self.rank = folder, rank
        self.rows: dict[int, list[dict]] = {}
        self.calls: dict[tuple[int, str], int] = {}

    def wrap(self, name: str, fn):
        def reward(**kwargs):
            values = fn(**kwargs)
            step = kwargs["trainer_state"].global_step + 1
            call = self.calls.get((step, name), 0)
            self.calls[(step, name)] = call + 1
            lengths = kwargs.get("completion_ids") or [None] * len(values)
            self.rows.setdefault(step, []).extend(
                {
                    "step": step,
                    "rank": self.rank,
                    "call": call,
                    "pos": i,
                    "sample_id": sid,
                    "reward": name,
                    "value": float("nan") if v is None else float(v),
                    "tokens": None if ids is None else len(ids),
                }
                for i, (sid, v, ids) in enumerate(zip(kwargs["sample_id"], values, lengths))
            )
            return values

        reward.__name__ = name
        return reward

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.folder.mkdir(parents=True, exist_ok=True)
        for step, rows in sorted(self.rows.items()):
            tmp = self.folder / f".step-{step:06d}-rank-{self.rank}.tmp"
            pq.write_table(pa.Table.from_pylist(rows), tmp)
            os.replace(tmp, self.folder / f"step-{step:06d}-rank-{self.rank}.parquet")
        self.rows.clear()
        self.calls.clear()


def fold_reward_log(folder: Path, weights: dict[str, float], out: Path) -> int:
    """One row per (sample_id, step): weighted reward mean/std over the sample's generations, and each reward's
    mean."""
    import duckdb

    files = sorted(folder.glob("step-*-rank-*.parquet"))
    if not files:
        return 0
    con = duckdb.connect()
    con.execute("CREATE TABLE raw AS SELECT * FROM read_parquet(?)", [[str(f) for f in files]])
    con.register("w", __import__("pyarrow").table({"reward": list(weights), "weight": list(weights.values())}))
    per_reward = ", ".join(f"avg(value) FILTER (WHERE reward = '{r}') AS \"{r}_mean\"" for r in weights)
    con.execute(f"""COPY (
        WITH totals AS (
            SELECT step, rank, call, pos, any_value(sample_id) AS sample_id, sum(coalesce(value, 0) * weight) FILTER
            (WHERE NOT isnan(value)) AS total, any_value(tokens) AS tokens
            FROM raw JOIN w USING (reward) GROUP BY ALL
        ), per_reward AS (
            SELECT sample_id, step, {per_reward} FROM raw WHERE NOT isnan(value) GROUP BY ALL
        )
        SELECT t.sample_id, t.step, count(*) AS n, avg(coalesce(t.total, 0)) AS reward_mean,
        coalesce(stddev_pop(coalesce(t.total, 0)), 0) AS reward_std, avg(t.tokens) AS completion_tokens,
               p.* EXCLUDE (sample_id, step)
        FROM totals t LEFT JOIN per_reward p USING (sample_id, step) GROUP BY ALL ORDER BY t.step, t.sample_id
    ) TO '{out}' (FORMAT parquet)""")
    return con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]


def _prepare_model(cfg: TrainConfig):
    import torch
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(cfg.model, dtype=torch.float32)
    if cfg.freeze_vision:
        for name, p in model.named_parameters():
            if ".visual." in f".{name}" or name.startswith("visual"):
                p.requires_grad_(False)
    if cfg.lora is not None:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=cfg.lora.r,
                lora_alpha=cfg.lora.alpha,
                lora_dropout=cfg.lora.dropout,
                target_modules=cfg.lora.target_modules,
                task_type="CAUSAL_LM",
            ),
        )
    return model


def train(cfg: TrainConfig, manifest_path: str | Path, output_dir: str | Path, resume: bool = False) -> dict:
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from vlmr1.processors import load_processor
    from vlmr1.rewards import trl_reward

    output_dir = Path(output_dir)
    _, manifest = read_manifest(manifest_path)
    warnings = check_manifest(manifest, cfg)
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        for line in warnings:
            print(f"VLMR1_WARNING {line}", flush=True)
    family = cfg.family_obj()
    dataset = load(manifest_path).select_columns(
        ["prompt", "image", "solution", "width", "height", "task", "sample_id"]
    )
    log = RewardLog(output_dir / "reward_log", rank)
    frame = family.frame()
    dialect = cfg.dialect or manifest_dialect(manifest)  # the shards' reward semantics by default
    rewards = [log.wrap(name, trl_reward(name, frame, dialect)) for name in cfg.rewards]

    class FlushRewards(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            log.flush()
            if rank == 0:  # the launcher's progress line (flows.progress)
                print(f"VLMR1_STEP {state.global_step}/{state.max_steps}", flush=True)

    processor = load_processor(cfg.model, family)
    trainer = GRPOTrainer(
        model=_prepare_model(cfg),
        reward_funcs=rewards,
        args=cfg.grpo_args(output_dir),
        train_dataset=dataset,
        processing_class=processor,
        callbacks=[FlushRewards()],
    )
    saved = checkpoints(output_dir)
    trainer.train(resume_from_checkpoint=str(saved[-1][1]) if resume and saved else None)
    log.flush()
    trainer.accelerator.wait_for_everyone()
    result = {"global_step": trainer.state.global_step, "output_dir": str(output_dir), "warnings": warnings}
    if trainer.accelerator.is_main_process:
        final = output_dir / "final"
        trainer.save_model(str(final))
        processor.save_pretrained(str(final))
        rows = fold_reward_log(output_dir / "reward_log", cfg.rewards, output_dir / "reward_log.parquet")
        result.update(final=str(final), reward_log=str(output_dir / "reward_log.parquet"), reward_log_rows=rows)
        (output_dir / "train_result.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="GRPO on curated shards (run by training.launch)")
    ap.add_argument("--config", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    result = train(load_config(args.config), args.manifest, args.output, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print("VLMR1_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
