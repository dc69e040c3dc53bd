"""An EasyR1 reward function (``worker.reward.reward_function=PATH:compute_score``) for our grounding exports.

EasyR1 hands a batch reward function ``[{response, response_length, ground_truth}]`` and nothing else, and it
resizes every image into ``[min_pixels, max_pixels]`` (``data.min_pixels`` / ``data.max_pixels``, 262144 and
4194304 in its example config) before the processor's own resize. So the ground truth we export
(``curation.exports.easyr1``) is a JSON object carrying what the score needs: the task, the boxes in original
pixels, the original size, EasyR1's resize bounds and the model family's frame. Here we replay both resizes
to find the frame the model answered in, map its boxes to original pixels and score them with the training
rewards of ``vlmr1.rewards`` (REC: IoU; OVD: mAP@[.5:.95] with the length penalty), plus the format reward.
"""

from __future__ import annotations

import json
import math

from vlmr1.boxes import BoxFrame, smart_resize

REWARD_NAME = "vlmr1-curate"
REWARD_TYPE = "batch"
ACCURACY = {"rec": "iou", "ovd": "od_length"}


def easyr1_resize(width: int, height: int, min_pixels: int | None, max_pixels: int | None) -> tuple[int, int]:
    """The size EasyR1's ``process_image`` gives an image: scaled by sqrt(bound / area), sides truncated."""
    if max_pixels is not None and width * height > max_pixels:
        f = math.sqrt(max_pixels / (width * height))
        width, height = int(width * f), int(height * f)
    if min_pixels is not None and width * height < min_pixels:
        f = math.sqrt(min_pixels / (width * height))
        width, height = int(width * f), int(height * f)
    return width, height


def model_frame(truth: dict) -> tuple[BoxFrame, tuple[int, int]]:
    """(box frame, processor input size) the model answered in for an exported ground truth."""
    fam = truth["family"]
    frame = BoxFrame(fam["frame"], min_pixels=fam["min_pixels"], max_pixels=fam["max_pixels"], factor=fam["factor"])
    w1, h1 = easyr1_resize(truth["width"], truth["height"], truth.get("min_pixels"), truth.get("max_pixels"))
    h2, w2 = smart_resize(h1, w1, fam["factor"], fam["min_pixels"], fam["max_pixels"])
    return frame, (w2, h2)


def compute_score(reward_inputs: list[dict], format_weight: float = 0.1) -> list[dict[str, float]]:
    """``overall = (1 - format_weight) * accuracy + format_weight * format`` per response.

    Responses are scored in batches, one per model frame (an export has one) and reward, not one by one.
    """
    from vlmr1.rewards import score_rows

    groups: dict[str, tuple] = {}  # family key -> (frame, [(index, row)])
    for i, item in enumerate(reward_inputs):
        truth = json.loads(item["ground_truth"])
        frame, (w2, h2) = model_frame(truth)
        row = {
            "completion": item["response"],
            "solution": json.dumps(truth["solution"]),
            "width": truth["width"],
            "height": truth["height"],
            "task": truth["task"],
            "resized_width": w2,
            "resized_height": h2,
        }
        groups.setdefault(json.dumps(truth["family"], sort_keys=True), (frame, []))[1].append((i, row))
    accuracy, fmt = [0.0] * len(reward_inputs), [0.0] * len(reward_inputs)
    for frame, members in groups.values():
        index, rows = [i for i, _ in members], [r for _, r in members]
        for i, value in zip(index, score_rows("format", rows, frame)):
            fmt[i] = value
        for task, name in ACCURACY.items():  # score_rows gives None to rows of the other task
            for i, row, value in zip(index, rows, score_rows(name, rows, frame)):
                if row["task"] == task:
                    accuracy[i] = value
    return [
        {"overall": (1 - format_weight) * a + format_weight * f, "format": f, "accuracy": a}
        for a, f in zip(accuracy, fmt)
    ]
