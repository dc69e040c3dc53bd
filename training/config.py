"""The training config: a YAML file (pydantic-validated, errors name file, line and field) mapped onto
TRL's ``GRPOConfig``.

The family, template and resize parameters here must match the shard
manifest's (``training.grpo.check_manifest``): difficulty labels were
measured under them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vlmr1.prompts import DEFAULT_TEMPLATE
from vlmr1.rewards import Dialect
from vlmr1.yamlfiles import ConfigError, load_model

DEEPSPEED_DIR = Path(__file__).resolve().parent / "deepspeed"


class TrainConfigError(ConfigError):
    pass


class LoRA(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


OURS = (
    "model",
    "family",
    "template",
    "dialect",
    "min_pixels",
    "max_pixels",
    "rewards",
    "deepspeed",
    "lora",
    "freeze_vision",
)  # every other setting is TRL's GRPOConfig's, passed through by name
FIXED = {"bf16": False, "save_strategy": "steps", "remove_unused_columns": False}  # what our trainer needs of TRL


class TrainConfig(BaseModel):
    """Our settings, then TRL's: any ``GRPOConfig`` field is accepted by its own name and handed to TRL as given
    (an unknown name is refused with its file and line). Declared below are only the TRL settings we read before
    TRL is imported (the group's shape, the sampler the scorer is compared with) or whose default we change."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str = Field(..., description="model path")
    family: Optional[str] = Field(None, description="model family (default: from the model's config)")
    template: str = DEFAULT_TEMPLATE
    # reward semantics (vlmr1.rewards.DIALECTS); None: the shards' own, so the labels match what training computes
    dialect: Optional[Dialect] = None
    min_pixels: Optional[int] = None
    max_pixels: Optional[int] = None
    # reward name -> weight; each reward scores only its own task (NaN elsewhere, which TRL skips)
    rewards: dict[str, float] = Field(default_factory=lambda: {"iou": 1.0, "od_length": 1.0, "format": 1.0})
    deepspeed: Optional[str] = Field("zero2", description="zero2 | zero3 | a path to a DeepSpeed JSON | null")
    lora: Optional[LoRA] = None
    freeze_vision: bool = True
    # TRL's, read by us: the group (batch x accumulation must be a multiple of it) and the sampler
    num_generations: int = Field(8, ge=2)
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off (TRL's default); the scorer's Sampling uses the same convention
    max_completion_length: int = Field(256, description="TRL: 512; VLM-R1's REC scripts use 256 (evaluation too)")
    seed: int = 42
    # TRL's, with VLM-R1's defaults where TRL's differ
    beta: float = Field(0.04, description="TRL >= 0.19: 0.0 (no KL term); VLM-R1 and the paper: 0.04")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = Field("grpo", description="TRL 1.x: dapo")
    num_train_epochs: float = Field(1.0, description="TRL: 3")
    save_steps: int = Field(100, description="TRL: 500")
    logging_steps: int = Field(1, description="TRL: 10; one reward row per step")
    report_to: Literal["none", "tensorboard", "wandb"] = "none"
    gradient_checkpointing: bool = Field(False, description="TRL: True; off for the tiny CPU models")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        from vlmr1.rewards import REGISTRY

        unknown = set(self.rewards) - set(REGISTRY)
        if unknown:
            raise ValueError(f"unknown rewards {sorted(unknown)}; known: {sorted(REGISTRY)}")
        if (self.per_device_train_batch_size * self.gradient_accumulation_steps) % self.num_generations:
            raise ValueError(
                "per_device_train_batch_size x gradient_accumulation_steps must be a multiple of num_generations"
            )
        not_trl = sorted(set(self.model_extra or {}) - trl_settings())  # TRL is imported only when extras exist
        if not_trl:
            raise ValueError(f"{not_trl[0]!r}: neither ours ({', '.join(OURS)}) nor a setting of TRL's GRPOConfig")
        return self

    def deepspeed_config(self) -> Optional[str]:
        if self.deepspeed in (None, "", "none"):
            return None
        if self.deepspeed in ("zero2", "zero3"):
            return str(DEEPSPEED_DIR / f"{self.deepspeed}.json")
        return self.deepspeed

    def family_obj(self):
        from vlmr1.families import family_of_model, get_family

        fam = get_family(self.family) if self.family else family_of_model(self.model)
        return fam.with_pixels(self.min_pixels, self.max_pixels)

    def sampling(self):
        """This run's sampler in the scorer's terms (``Sampling``), so the two can be compared name by name."""
        from vlmr1.rollout.base import Sampling

        return Sampling.from_trl(self, seed=self.seed)

    def trl(self) -> dict:
        """Every TRL setting of this config, declared or passed through, by TRL's own names."""
        return {k: v for k, v in self.model_dump().items() if k not in OURS}

    def grpo_args(self, output_dir: str | Path):
        from trl import GRPOConfig

        weights = list(self.rewards.values())
        return GRPOConfig(output_dir=str(output_dir), **self.trl(), **FIXED, deepspeed=self.deepspeed_config(),
                          reward_weights=weights)  # fmt: skip


@lru_cache(maxsize=1)
def trl_settings() -> frozenset[str]:
    """The field names of TRL's GRPOConfig (TrainingArguments' included)."""
    import dataclasses

    from trl import GRPOConfig

    return frozenset(f.name for f in dataclasses.fields(GRPOConfig))


def load_config(path: str | Path) -> TrainConfig:
    return load_model(path, TrainConfig, TrainConfigError)


def continued_config(config: str | Path, checkpoint: str | Path, out: Path) -> Path:
    """A copy of ``config`` that starts from ``checkpoint`` instead of the base model (incremental retraining)."""
    import yaml

    cfg = yaml.safe_load(Path(config).read_text())
    cfg["model"] = str(checkpoint)
    path = Path(out) / "train-continued.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def seeded_config(config: str | Path, seed: int, out: Path, save_steps: int | None = None) -> Path:
    """A copy of ``config`` with another seed (one arm of an ablation, trained once per seed), and checkpoints
    every ``save_steps`` when evaluation curves are wanted."""
    import yaml

    cfg = yaml.safe_load(Path(config).read_text())
    cfg["seed"] = int(seed)
    if save_steps:
        cfg["save_steps"] = int(save_steps)
    path = Path(out) / f"train-seed{seed}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path
