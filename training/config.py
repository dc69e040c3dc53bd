"""The training config: a YAML file (pydantic-validated, errors name file, line and field) mapped onto
TRL's ``GRPOConfig``.

The family, template and resize parameters here must match the shard
manifest's (``training.grpo.check_manifest``): difficulty labels were
measured under them.
"""

from __future__ import annotations

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


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(..., description="model path")
    family: Optional[str] = Field(None, description="model family (default: from the model's config)")
    template: str = DEFAULT_TEMPLATE
    # reward semantics (vlmr1.rewards.DIALECTS); None: the shards' own, so the labels match what training computes
    dialect: Optional[Dialect] = None
    min_pixels: Optional[int] = None
    max_pixels: Optional[int] = None
    # reward name -> weight; each reward scores only its own task (NaN elsewhere, which TRL skips)
    rewards: dict[str, float] = Field(default_factory=lambda: {"iou": 1.0, "od_length": 1.0, "format": 1.0})
    num_generations: int = Field(8, ge=2)
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    beta: float = 0.04
    epsilon: float = 0.2
    epsilon_high: Optional[float] = None
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = "grpo"
    learning_rate: float = 1e-6
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off (TRL's default); the scorer's Sampling uses the same convention
    max_completion_length: int = 256
    max_steps: int = -1
    num_train_epochs: float = 1.0
    save_steps: int = 100
    logging_steps: int = 1
    report_to: Literal["none", "tensorboard", "wandb"] = "none"
    seed: int = 42
    deepspeed: Optional[str] = Field("zero2", description="zero2 | zero3 | a path to a DeepSpeed JSON | null")
    lora: Optional[LoRA] = None
    freeze_vision: bool = True
    gradient_checkpointing: bool = False
    use_cpu: bool = False

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

    def grpo_args(self, output_dir: str | Path):
        from trl import GRPOConfig

        return GRPOConfig(
            output_dir=str(output_dir),
            **self.sampling().to_trl(),
            per_device_train_batch_size=self.per_device_train_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            beta=self.beta,
            epsilon=self.epsilon,
            epsilon_high=self.epsilon_high,
            loss_type=self.loss_type,
            learning_rate=self.learning_rate,
            max_steps=self.max_steps,
            num_train_epochs=self.num_train_epochs,
            save_steps=self.save_steps,
            logging_steps=self.logging_steps,
            report_to=self.report_to,
            seed=self.seed,
            deepspeed=self.deepspeed_config(),
            gradient_checkpointing=self.gradient_checkpointing,
            use_cpu=self.use_cpu,
            reward_weights=list(self.rewards.values()),
            bf16=False,
            save_strategy="steps",
            remove_unused_columns=False,
        )


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
