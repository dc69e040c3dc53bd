"""Parse model completions: ``<think>..</think><answer>..</answer>``, REC boxes, OVD lists.

Completions come from a policy under optimisation, so they are adversarial by
construction. Every function here is total (never raises on any string),
bounded (input is cut to ``MAX_COMPLETION_CHARS``; JSON repair only runs on
short answers) and linear: tags are found with ``str.find`` and the one
regular expression has no nested or overlapping quantifiers.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import json_repair

# Completions longer than this are cut before parsing (a 1 MB string is
# scored in microseconds instead of seconds). Policies in GRPO rarely exceed a
# few thousand characters; the cut keeps the head, where the tags start.
MAX_COMPLETION_CHARS = 32_768
# json-repair is pure Python and superlinear on some inputs: only short
# answers that already look like JSON are repaired.
MAX_REPAIR_CHARS = 4_096

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

_NUM = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
# Four numbers in brackets. ASCII digits only; each quantified piece is
# separated by a literal, so matching is linear in the input.
_FOUR_NUMBERS = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]", re.ASCII)


@dataclass(frozen=True)
class Tagged:
    """The think/answer structure of a completion."""

    think: str | None
    answer: str | None
    well_formed: bool  # exactly <think>..</think> <answer>..</answer>, nothing around


@dataclass(frozen=True)
class Detection:
    label: str
    bbox: tuple[float, float, float, float]


@dataclass(frozen=True)
class OvdAnswer:
    """A parsed OVD answer. ``detections`` empty and ``none`` True means "None"."""

    detections: tuple[Detection, ...] = ()
    invalid: int = 0  # list items that were not a valid {bbox_2d, label}
    none: bool = False

    @property
    def n_pred(self) -> int:
        return len(self.detections) + self.invalid


def bound(text: object) -> str:
    """Coerce to ``str`` and cut to the size limit."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    return text[:MAX_COMPLETION_CHARS]


def split_tags(text: object) -> Tagged:
    """Find the think and answer blocks.

    ``answer`` is the first complete ``<answer>..</answer>`` block (as VLM-R1
    reads it). ``well_formed`` is VLM-R1's format check made strict and
    linear: the stripped text is one think block, optional whitespace, one
    answer block, and no other tag of either kind.
    """
    s = bound(text)
    think = answer = None
    t0 = s.find(THINK_OPEN)
    if t0 >= 0:
        t1 = s.find(THINK_CLOSE, t0 + len(THINK_OPEN))
        if t1 >= 0:
            think = s[t0 + len(THINK_OPEN) : t1]
    a0 = s.find(ANSWER_OPEN)
    if a0 >= 0:
        a1 = s.find(ANSWER_CLOSE, a0 + len(ANSWER_OPEN))
        if a1 >= 0:
            answer = s[a0 + len(ANSWER_OPEN) : a1]
    return Tagged(think, answer, _well_formed(s))


def _well_formed(s: str) -> bool:
    s = s.strip()
    if not (s.startswith(THINK_OPEN) and s.endswith(ANSWER_CLOSE)):
        return False
    t1 = s.find(THINK_CLOSE)
    if t1 < 0:
        return False
    rest = s[t1 + len(THINK_CLOSE) :].lstrip()
    if not rest.startswith(ANSWER_OPEN):
        return False
    think_body = s[len(THINK_OPEN) : t1]
    answer_body = rest[len(ANSWER_OPEN) : -len(ANSWER_CLOSE)]
    tags = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
    return not any(tag in think_body or tag in answer_body for tag in tags)


def answer_text(text: object, require_tags: bool = True) -> str | None:
    """The answer block; without tags, the whole text when ``require_tags`` is False."""
    tagged = split_tags(text)
    if tagged.answer is not None:
        return tagged.answer
    return None if require_tags else bound(text)


def strip_fence(s: str) -> str:
    """Content of the first ```json (or ```) fence, else ``s`` itself."""
    start = s.find("```")
    if start < 0:
        return s
    body_start = start + 3
    if s.startswith("json", body_start):
        body_start += 4
    end = s.find("```", body_start)
    return s[body_start:] if end < 0 else s[body_start:end]


def _load_json(s: str) -> object | None:
    """Strict JSON first; json-repair only for short text that starts like JSON."""
    s = s.strip()
    if not s or s[0] not in "[{":
        return None
    try:
        return json.loads(s)
    except (ValueError, RecursionError):
        pass
    if len(s) > MAX_REPAIR_CHARS:
        return None
    try:
        value = json_repair.loads(s)
    except (ValueError, RecursionError, TypeError, IndexError, KeyError, AttributeError):
        return None
    return value if isinstance(value, (list, dict)) else None


_NUMBER_TYPES = (int, float)  # exact types: bool is an int subclass and is refused


def _as_box(value: object) -> tuple[float, float, float, float] | None:
    """Four finite numbers (not booleans), else None."""
    if type(value) not in (list, tuple) or len(value) != 4:
        return None
    if not all(type(v) in _NUMBER_TYPES for v in value):
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
    except OverflowError:  # ints too large for a float
        return None
    if not (math.isfinite(x1) and math.isfinite(y1) and math.isfinite(x2) and math.isfinite(y2)):
        return None
    return (x1, y1, x2, y2)


def _box_of(obj: object) -> tuple[float, float, float, float] | None:
    if isinstance(obj, dict):
        for key in ("bbox_2d", "bbox", "box"):
            if key in obj:
                return _as_box(obj[key])
        return None
    if isinstance(obj, list):
        box = _as_box(obj)
        if box is not None:
            return box
        if obj and isinstance(obj[0], (dict, list)):
            return _box_of(obj[0])  # [{"bbox_2d": ..}] or [[x1, y1, x2, y2]]
    return None


def parse_rec_box(answer: object) -> tuple[float, float, float, float] | None:
    """One box from a REC answer, in the model's frame.

    Tried in order: a JSON object with ``bbox_2d`` (or a list whose first item
    is one), a bare list of four numbers, then the first four-number list
    anywhere in the text.
    """
    s = bound(answer)
    data = _load_json(strip_fence(s))
    if data is not None:
        box = _box_of(data)
        if box is not None:
            return box
    m = _FOUR_NUMBERS.search(s)
    if m is None:
        return None
    return _as_box([float(g) for g in m.groups()])


def is_none_answer(s: str) -> bool:
    return s.strip().rstrip(".").strip().lower() == "none"


def normalize_label(label: str) -> str:
    """Labels compare case- and whitespace-insensitively."""
    return " ".join(label.split()).lower()


def parse_ovd(answer: object) -> OvdAnswer | None:
    """An OVD answer: a JSON list of ``{"bbox_2d": [..], "label": str}``, or "None".

    Returns None when the answer is not parseable at all (no reward). Items
    that are not valid detections are counted in ``invalid`` (they still count
    as predictions for the length penalty, so padding with junk never pays).
    """
    s = bound(answer)
    if is_none_answer(s):
        return OvdAnswer(none=True)
    body = strip_fence(s)
    if is_none_answer(body):
        return OvdAnswer(none=True)
    data = _load_json(body)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return None
    dets, invalid = [], 0
    for item in data:
        box = _box_of(item) if isinstance(item, dict) else None
        label = item.get("label") if isinstance(item, dict) else None
        if box is None or not isinstance(label, str) or not label.strip():
            invalid += 1
            continue
        dets.append(Detection(normalize_label(label), box))
    if not dets and not invalid:
        return OvdAnswer(none=True)  # "[]" is the empty answer, same as "None"
    return OvdAnswer(tuple(dets), invalid)
