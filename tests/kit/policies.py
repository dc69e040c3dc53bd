"""A scripted policy: an engine whose k answers per request a test decides, written as a model of the family
would write them (its frame, its tags), so scoring, rewards and label quality read them as they read a model's."""

from __future__ import annotations

import hashlib
import json
from typing import Callable

from vlmr1.families import get_family
from vlmr1.rollout.base import Completion, EngineStats

UNPARSEABLE = "<think>hmm</think><answer>somewhere on the left</answer>"


def pixels_key(image) -> str:
    """What identifies an image a request carries (byte copies of one picture share it)."""
    return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


class ScriptedPolicy:
    """``answer(pixels, question, n)`` returns n answers, each None (unparseable) or ``[(label, box), ...]`` in
    original pixels (REC: one box, label ignored). ``seeded``: ``answer(pixels, question, seeds)`` gets each answer's
    seed instead (``Sampling.request_seed`` + j, as the real engines seed completion j)."""

    def __init__(self, answer: Callable, family: str = "qwen2_5_vl", name: str = "scripted", seeded: bool = False):
        self.family, self.stats, self.answer, self.name = get_family(family), EngineStats(), answer, name
        self.seeded = seeded

    def describe(self) -> dict:
        return {"path": f"scripted:{self.name}", "sha256": hashlib.sha256(self.name.encode()).hexdigest()}

    def generate(self, requests, sampling):
        out = []
        for i, req in enumerate(requests):
            image = req.images[0]
            question = req.messages[0]["content"][-1]["text"]
            seeds = [sampling.request_seed(i, req.seed) + j for j in range(sampling.n)]
            answers = self.answer(pixels_key(image), question, seeds if self.seeded else sampling.n)
            out.append([Completion(self._text(a, question, image.size), 12) for a in answers])
            self.stats.completions += len(answers)
        return out

    def _text(self, answer, question: str, size: tuple[int, int]) -> str:
        if answer is None:
            return UNPARSEABLE
        frame = self.family.frame()
        boxes = [[round(float(v)) for v in frame.from_original([box], *size)[0]] for _, box in answer]
        if "describes:" in question:  # REC
            return f"<think>found it</think><answer>{json.dumps(boxes[0])}</answer>"
        dets = [{"bbox_2d": b, "label": label} for b, (label, _) in zip(boxes, answer)]
        return (
            "<think>found them</think><answer>```json\n" + json.dumps(dets) + "\n```</answer>"
            if dets
            else "<think>nothing</think><answer>None</answer>"
        )
