"""Varied model completions for REC and OVD, with their ground truth: what reward dialects are compared on.

Seeded and offline. REC cases carry the original image size, the model's input size (a multiple of 28, as
Qwen's processor makes it) and a ground-truth box in original pixels; completions answer in the input frame,
well formed or not (floats, negatives, spaces, no braces, several blocks, no tags, None, truncation, boxes
touching by one pixel). OVD cases carry VLM-R1's answer text (a ```json fence of ``bbox_2d``/``label``
items, or None); completions mix exact, shifted, extra, unknown-label, ``bbox``-keyed, 5-number, unfenced,
multi-fence and multi-block answers.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

THINK = "<think>looking at the image</think>"
LABELS = ["person", "dog", "red car", "a horse running or jumping", "equestrian rider's helmet", "cup"]


@dataclass(frozen=True)
class RecCase:
    completion: str
    truth: list[float]
    image_wh: tuple[int, int]
    input_wh: tuple[int, int]

    def args(self) -> tuple:
        return self.completion, self.truth, self.input_wh, self.image_wh


@dataclass(frozen=True)
class OvdCase:
    completion: str
    truth_answer: str


def _box(rng: random.Random, w: float, h: float) -> list[float]:
    x1, y1 = rng.uniform(0, w * 0.8), rng.uniform(0, h * 0.8)
    return [x1, y1, rng.uniform(x1 + 1, w), rng.uniform(y1 + 1, h)]


def _rec_answer(rng: random.Random, box: list[int]) -> str:
    """An answer text around ``box``, in one of the shapes models produce."""
    a, b, c, d = box
    shapes = [
        f'{{"bbox_2d": [{a}, {b}, {c}, {d}], "label": "x"}}',
        f'```json\n[{{"bbox_2d": [{a}, {b}, {c}, {d}]}}]\n```',
        f"[{a}, {b}, {c}, {d}]",
        f"[{a},{b},{c},{d}]",
        f"[ {a}, {b}, {c}, {d} ]",
        f'{{"bbox_2d": [{a}.0, {b}.5, {c}, {d}]}}',
        f'{{"bbox_2d": [-{a}, {b}, {c}, {d}]}}',
        f'{{"bbox": [{a}, {b}, {c}, {d}]}}',
        f'{{"bbox_2d": [{a}, {b}, {c}]}}',
        f'{{"bbox_2d": [{a},\n {b},\n {c},\n {d}]}}',
        "None",
        f'{{"bbox_2d": [{a}, {b}, {c}, {d}]',
    ]
    return rng.choice(shapes)


def _wrap(rng: random.Random, answer: str, other: str) -> str:
    shapes = [
        f"{THINK}<answer>{answer}</answer>",
        f"{THINK}\n<answer>\n{answer}\n</answer>",
        f"<answer>{answer}</answer>",
        f"{THINK}<answer>{other}</answer><answer>{answer}</answer>",
        f"{THINK}<answer>{answer}</answer><answer>{other}</answer>",
        f"{THINK} {answer}",
        f"{THINK}<answer>{answer}</answer> trailing words",
        f"<think>a</think><think>b</think><answer>{answer}</answer>",
        f"{THINK}<answer>{answer}",
        answer,
    ]
    return rng.choice(shapes)


def rec_batch(cases: list[RecCase], frame):
    """A ``vlmr1.rewards.RewardBatch`` of REC cases: truth as a one-target solution, the input size as resized."""
    from vlmr1.rewards import RewardBatch

    return RewardBatch.build(
        [c.completion for c in cases],
        [json.dumps([{"label": "x", "bbox": c.truth}]) for c in cases],
        [c.image_wh[0] for c in cases],
        [c.image_wh[1] for c in cases],
        "rec",
        frame,
        [c.input_wh for c in cases],
    )


def rec_cases(n: int, seed: int = 0) -> list[RecCase]:
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        w, h = rng.choice([(640, 480), (480, 640), (1280, 720), (333, 500), (1000, 1000)])
        iw, ih = rng.choice([(w // 28 * 28 or 28, h // 28 * 28 or 28), (644, 476), (28 * 20, 28 * 30)])
        truth = [round(v, 2) for v in _box(rng, w, h)]
        if rng.random() < 0.08:  # a box touching the truth by at most one pixel
            x = truth[2] + rng.choice([-1, -0.5, 0, 0.5])
            truth_in = [x, truth[1], x + 40, truth[3]]
        else:
            jitter = rng.choice([0, 0, 2, 15, 80])
            truth_in = [v + rng.uniform(-jitter, jitter) for v in truth]
        model = [max(0, round(v)) for v in (truth_in[0] * iw / w, truth_in[1] * ih / h, truth_in[2] * iw / w)]
        model.append(max(0, round(truth_in[3] * ih / h)))
        other = _rec_answer(rng, [rng.randrange(0, iw) for _ in range(4)])
        cases.append(RecCase(_wrap(rng, _rec_answer(rng, model), other), truth, (w, h), (iw, ih)))
    return cases


def _ovd_answer(items: list[dict] | None) -> str:
    if not items:
        return "None"
    return "```json\n" + json.dumps(items) + "\n```"


def _ovd_prediction(rng: random.Random, truth: list[dict]) -> str:
    items = [dict(t) for t in truth if rng.random() < 0.85]
    for t in items:
        if rng.random() < 0.4:
            t["bbox_2d"] = [v + rng.choice([0, 3, 20, 60]) for v in t["bbox_2d"]]
    if rng.random() < 0.3:
        items.append({"bbox_2d": _int_box(rng), "label": rng.choice(LABELS)})
    if rng.random() < 0.1:
        items.insert(0, {"bbox": _int_box(rng), "label": rng.choice(LABELS)})
    if rng.random() < 0.1 and items and "bbox_2d" in items[0]:
        items[0] = {"bbox_2d": items[0]["bbox_2d"] + [7], "label": items[0]["label"]}
    if rng.random() < 0.05 and items and "bbox_2d" in items[0]:
        items[0] = {"bbox_2d": [str(v) for v in items[0]["bbox_2d"]], "label": items[0]["label"]}
    text = json.dumps(items)
    shapes = [
        f"```json\n{text}\n```",
        f"```json\n{text}\n```",
        text,
        f"```json\n{_ovd_answer(truth)[8:-4]}\n```\n```json\n{text}\n```",
        f"```json\n{text}\n```\n```json\n[]\n```",
        "None",
        "none",
        f"```json\n{text[:-3]}\n```",
        '```json\n{"a": 1}\n```',
    ]
    return rng.choice(shapes)


def _int_box(rng: random.Random) -> list[int]:
    x, y = rng.randrange(0, 500), rng.randrange(0, 500)
    return [x, y, x + rng.randrange(2, 200), y + rng.randrange(2, 200)]


def ovd_cases(n: int, seed: int = 0) -> list[OvdCase]:
    rng = random.Random(seed + 1)
    cases = []
    for _ in range(n):
        k = rng.choice([0, 0, 1, 2, 3, 5])
        truth = [{"bbox_2d": _int_box(rng), "label": rng.choice(LABELS)} for _ in range(k)]
        other = _ovd_prediction(rng, truth)
        completion = _wrap(rng, _ovd_prediction(rng, truth), other)
        cases.append(OvdCase(completion, _ovd_answer(truth)))
    return cases
