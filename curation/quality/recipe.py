"""A recipe: a YAML file of quality rules plus the selection settings later stages use.

Validated by pydantic; an error names the file, the line and the field
(``RecipeError``). The recipe hash is the sha256 of its canonical content,
with every rule resolved to the SQL it runs, so editing a comment changes
nothing and changing a built-in rule's SQL in code changes the hash.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from curation.quality.features import DEFAULT_EVAL_SPLITS
from curation.quality.rules import BUILTIN, render
from curation.quality.sandbox import PredicateError, check_predicate
from vlmr1.yamlfiles import ConfigError, load_model

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
Param = Union[bool, int, float, str]


class RecipeError(ConfigError):
    """A recipe that cannot be used; the message names file, line and field."""


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: Optional[str] = Field(None, description="a built-in rule (curation.quality.rules.BUILTIN)")
    sql: Optional[str] = Field(None, description="a custom predicate over sample_features")
    name: Optional[str] = None
    params: dict[str, Param] = Field(default_factory=dict)
    action: Literal["drop", "flag"] = "drop"
    why: Optional[str] = None

    @model_validator(mode="after")
    def _one_source(self) -> "RuleSpec":
        if (self.rule is None) == (self.sql is None):
            raise ValueError("give exactly one of 'rule' (a built-in) or 'sql' (a custom predicate)")
        if self.rule is not None:
            if self.rule not in BUILTIN:
                raise ValueError(f"unknown built-in rule {self.rule!r}; known: {', '.join(sorted(BUILTIN))}")
            unknown = set(self.params) - set(BUILTIN[self.rule].params)
            if unknown:
                raise ValueError(
                    f"rule {self.rule!r} has no parameter {', '.join(sorted(unknown))}; it takes "
                    f"{sorted(BUILTIN[self.rule].params) or 'none'}"
                )
            for name, value in self.params.items():
                _check_kind(self.rule, name, value, BUILTIN[self.rule].params[name])
        if self.name is None:
            if self.rule is None:
                raise ValueError("a custom rule needs a 'name'")
            self.name = self.rule
        if self.sql is not None:
            try:
                check_predicate(self.resolved_sql())
            except (PredicateError, RecipeError) as exc:
                raise ValueError(f"rule {self.name!r}: {exc}") from None
        return self

    def resolved_sql(self) -> str:
        if self.rule is not None:
            spec = BUILTIN[self.rule]
            return render(spec.sql, {**spec.params, **self.params})
        try:
            return render(self.sql, self.params)
        except (KeyError, IndexError, ValueError) as exc:
            raise RecipeError(f"rule {self.name!r}: placeholder without a parameter: {exc}") from None


def _check_kind(rule: str, name: str, value, default) -> None:
    """A built-in rule's parameter has its default's kind: a number where a number is compared (``four`` is not)."""

    def kind(v) -> str:
        return "boolean" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else "string"

    if kind(value) != kind(default):
        raise ValueError(f"rule {rule!r}: parameter {name} must be a {kind(default)} like {default!r}, got {value!r}")


class Difficulty(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_pass_rate: float = Field(0.0, ge=0.0, le=1.0)
    max_pass_rate: float = Field(1.0, ge=0.0, le=1.0)
    require_signal: bool = Field(
        False,
        description="keep only samples whose k rewards differ (reward std > 0): GRPO learns nothing from the rest",
    )
    max_no_signal: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="keep samples whose chance that a GRPO group of G gets no learning signal "
        "(p_no_signal, from the pass rate's posterior) is at most this; unscored by a posterior: not kept",
    )
    max_interval: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="keep samples whose pass rate is settled: its 90% posterior interval at "
        "most this wide (adaptive scoring stops where more rollouts would not change a decision)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "Difficulty":
        if self.min_pass_rate > self.max_pass_rate:
            raise ValueError(f"min_pass_rate {self.min_pass_rate} is above max_pass_rate {self.max_pass_rate}")
        return self

    def admits(self, pass_rate: float, reward_std: float, p_no_signal=None, interval=None) -> bool:
        """A scored sample is in the band (and, with ``require_signal``, its rewards vary; with the posterior
        bounds, its posterior is known and within them)."""
        in_band = self.min_pass_rate <= pass_rate <= self.max_pass_rate
        if self.max_no_signal is not None and not (p_no_signal is not None and p_no_signal <= self.max_no_signal):
            return False
        if self.max_interval is not None and not (interval is not None and interval <= self.max_interval):
            return False
        return in_band and (not self.require_signal or reward_std > 0)

    def describe(self) -> str:
        signal = " with reward std > 0" if self.require_signal else ""
        posterior = "".join(
            f", {name} <= {value}"
            for name, value in (("P(no signal)", self.max_no_signal), ("90% interval", self.max_interval))
            if value is not None
        )
        return f"difficulty band [{self.min_pass_rate}, {self.max_pass_rate}]{signal}{posterior}"


class Selection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    difficulty: Difficulty = Field(default_factory=Difficulty)
    caps: dict[str, int] = Field(default_factory=dict, description="max samples per source")
    balance_by: Optional[Literal["source", "task", "split", "band", "difficulty_bucket", "category"]] = Field(
        None,
        description="groups that get equal shares of the pool (smaller groups give their leftover share to the "
        "others)",
    )
    pool_size: Optional[int] = Field(None, gt=0)
    curriculum: Literal["shuffled", "easy_to_hard"] = "shuffled"
    seed: int = 0


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # a file-name-safe word: it names report folders and ablation outputs, so no separators or leading dot
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    eval_splits: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EVAL_SPLITS),
        description="glob patterns over split; with eval_only samples they define the evaluation images",
    )
    rules: list[RuleSpec] = Field(default_factory=list)
    selection: Selection = Field(default_factory=Selection)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[RuleSpec]) -> list[RuleSpec]:
        seen = set()
        for r in rules:
            if r.name in seen:
                raise ValueError(f"two rules are named {r.name!r}")
            seen.add(r.name)
        return rules

    def resolved(self) -> list[tuple[str, str, str]]:
        """(name, SQL predicate, action) per rule, in recipe order."""
        return [(r.name, r.resolved_sql(), r.action) for r in self.rules]

    def near_dup_max(self) -> int:
        values = [
            int({**BUILTIN[r.rule].params, **r.params}["max_distance"])
            for r in self.rules
            if r.rule == "near_duplicate_image"
        ]
        return max(values, default=4)

    def canonical(self) -> dict:
        return {
            "name": self.name,
            "eval_splits": sorted(self.eval_splits),
            "near_dup_max": self.near_dup_max(),
            "rules": [{"name": n, "sql": s, "action": a} for n, s, a in self.resolved()],
            "selection": self.selection.model_dump(),
        }

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[:16]


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe; a bare name (``default``) means a shipped recipe."""
    path = Path(path)
    if not path.exists() and (RECIPES_DIR / f"{path.name}.yaml").exists():
        path = RECIPES_DIR / f"{path.name}.yaml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
        raise RecipeError(f"{path}: no such recipe file, and no shipped recipe of that name (shipped: {shipped})")
    recipe = load_model(path, Recipe, RecipeError)
    try:
        recipe.resolved()
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}") from None
    return recipe
