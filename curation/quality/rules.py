"""Built-in quality rules: SQL predicates over ``sample_features`` with default parameters.

A recipe names a rule and may override its parameters, or writes its own
SQL. ``{param}`` placeholders are filled with validated literals
(``render``), never with raw text. A predicate that is NULL (feature does
not apply) does not fire.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Builtin:
    sql: str
    params: dict = field(default_factory=dict)
    why: str = ""


BUILTIN: dict[str, Builtin] = {
    "degenerate_box": Builtin(
        "min_box_w < {min_px} OR min_box_h < {min_px}",
        {"min_px": 1.0},
        "a box under a pixel wide cannot be localised; COCO has zero-height boxes",
    ),
    "box_out_of_bounds": Builtin(
        "oob_px > {tolerance_px}",
        {"tolerance_px": 2.0},
        "a box past the image edge is in the wrong frame or mis-annotated; small overhang is float noise",
    ),
    "tiny_box": Builtin(
        "min_area_frac < {min_frac}",
        {"min_frac": 0.0005},
        "under ~0.05% of the image a box is a few patches after resize: IoU rewards become noise",
    ),
    "huge_box": Builtin(
        "max_area_frac > {max_frac}",
        {"max_frac": 0.95},
        "a box covering the whole image rewards answering the image size",
    ),
    "extreme_aspect": Builtin(
        "max_aspect > {max_ratio}", {"max_ratio": 20.0}, "slivers: a one-pixel shift changes IoU by half"
    ),
    "crowd": Builtin(
        "has_crowd",
        {},
        "crowd regions (1.17% of COCO annotations) are unlabelled groups: missing boxes look like false positives",
    ),
    "expr_too_short": Builtin(
        "expr_tokens < {min_tokens}", {"min_tokens": 2}, "a one-word expression rarely identifies one object"
    ),
    "expr_too_long": Builtin(
        "expr_tokens > {max_tokens}", {"max_tokens": 25}, "very long expressions are mostly annotation run-ons"
    ),
    "non_ascii_or_empty": Builtin(
        "non_ascii OR empty_text", {}, "empty or non-English text in an English dataset is noise"
    ),
    "non_unique_ref": Builtin(
        "non_unique_ref", {}, "the same expression for different objects in one image has no single answer"
    ),
    "ambiguous_target": Builtin(
        "distractors > {max_distractors}",
        {"max_distractors": 3},
        "many same-category distractors make REC hard in a way the expression may not resolve",
    ),
    "image_missing": Builtin("probe_error LIKE 'image missing%'", {}, "no image, no sample"),
    "image_unreadable": Builtin(
        "probe_error LIKE 'image unreadable%' OR probe_error LIKE 'image too large%'",
        {},
        "corrupt files and decompression bombs crash data loaders",
    ),
    "image_size_mismatch": Builtin("size_mismatch", {}, "boxes annotated for another size are in the wrong frame"),
    "exact_duplicate_image": Builtin("exact_dup", {}, "byte-identical images under two names: keep one"),
    "near_duplicate_image": Builtin(
        "near_dup_distance <= {max_distance}",
        {"max_distance": 4},
        "re-encodes and resizes of one picture (pHash within a few bits): keep one",
    ),
    "mastered": Builtin(
        "train_visits >= {min_visits} AND train_reward_recent >= {min_reward}",
        {"min_visits": 2, "min_reward": 0.9},
        "the policy already solves it (mean reward over its last visits): GRPO gets no signal from it (POLARIS, "
        "Skywork-OR1 drop such prompts between stages)",
    ),
    "never_learned": Builtin(
        "train_visits >= {min_visits} AND train_reward_max <= {max_reward}",
        {"min_visits": 2, "max_reward": 0.0},
        "never rewarded in any visit: too hard for now, or a wrong label (a suspect annotation to look at)",
    ),
    "suspect_label": Builtin(
        "label_score >= {min_score} OR (label_score >= {min_score_unlearned} AND train_visits >= {min_visits} "
        "AND train_reward_max <= 0.0)",
        {"min_score": 0.3, "min_score_unlearned": 0.15, "min_visits": 2},
        "the policy's k stored answers agree with each other and not with the label (another object, or the same "
        "object elsewhere): a wrong label (Ref-L4 found 14% of RefCOCO's); never rewarded in training makes a "
        "weaker disagreement enough",
    ),
    "eval_leakage": Builtin(
        "leaks_eval",
        {},
        "a training image that is in an evaluation split inflates every reported number; "
        "RefCOCO val/test images are COCO train2014 images",
    ),
}


def literal(value) -> str:
    """A parameter as a SQL literal: numbers and booleans as such, strings quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"parameter must be a number, boolean or string, got {type(value).__name__}")


def render(sql: str, params: dict) -> str:
    """Fill ``{name}`` placeholders; KeyError names a placeholder with no value."""
    return sql.format(**{k: literal(v) for k, v in params.items()})
