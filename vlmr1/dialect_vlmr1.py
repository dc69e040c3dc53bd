"""The ``vlmr1`` reward dialect: VLM-R1's released reward and evaluation semantics, rule for rule.

Written from VLM-R1's documented behaviour (``grpo_jsonl.py``, ``vlm_modules/qwen_module.py``,
``src/eval/test_rec_r1.py`` at om-ai-lab/VLM-R1), not from its code. Where our own dialect
(``vlmr1.rewards``, "vlmr1-curate") is more forgiving, this one is not; the README's dialect table lists
every difference. Per row, plain functions of strings and numbers:

REC (``iou_reward`` / ``format_reward_rec``; training with ``--is_reward_customized_from_vlm_module``)
  - the *first* ``<answer>...</answer>`` block, then the first ``[int, int, int, int]`` in it (non-negative
    integers only, no space after ``[``); floats, negatives or no block: 0;
  - the box is rescaled from the model's input frame (grid x 14 pixels) to the original image;
  - IoU with inclusive pixel ends (``x2 - 1``, ``+ 1``) over an exclusive union; a zero union: 0;
  - format: ``<think>..</think>`` then ``<answer>`` holding ``{ ... [d, d, d, d] ... }``, searched anywhere;
  - evaluation (``test_rec_r1.py``): the box must sit inside ``{...}``, Acc@0.5 is ``IoU > 0.5``.
OVD (``accuracy`` reward with ``od_ap`` / ``od_ap50`` / ``odLength``; ``format`` reward)
  - the *last* ``<answer>`` block of the completion, the *last* ```` ```json ```` fence in it;
  - ground truth "None" and answer "None": 1; no fence on either side: 1; one side empty: 0;
  - COCO AP (pycocotools, one 2048x2048 image, every score 1.0) over ``bbox_2d`` items whose label is a
    ground-truth label; other items are skipped but still count for the length penalty;
  - no rescaling: OVD answers are compared in the frame they are written in;
  - format: the whole completion is ``<think>..</think>\\s*<answer>..</answer>``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re

from vlmr1.records import answer_text

ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
REC_BOX = re.compile(r"\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]")
REC_EVAL_BOX = re.compile(r"\{.*\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]\s*.*\}", re.S)
REC_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?\{.*\[\d+,\s*\d+,\s*\d+,\s*\d+\].*\}.*?</answer>", re.S)
FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.S)
FENCE = re.compile(r"```json(.*?)```", re.S)
PATCH = 14  # VLM-R1 reads the model's input size as image_grid_thw x 14


def pixel_iou(a, b) -> float:
    """IoU with inclusive pixel ends for the intersection and exclusive ends for the areas."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2] - 1, b[2] - 1), min(a[3] - 1, b[3] - 1)
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    try:
        return float(inter) / union
    except ZeroDivisionError:
        return 0.0


def _rescaled(box: list[int], input_wh: tuple[int, int], image_wh: tuple[int, int]) -> list[float]:
    (iw, ih), (w, h) = input_wh, image_wh
    return [box[0] / iw * w, box[1] / ih * h, box[2] / iw * w, box[3] / ih * h]


def rec_iou(completion: str, truth: list[float], input_wh: tuple[int, int], image_wh: tuple[int, int]) -> float:
    """VLM-R1's REC training reward: ``input_wh`` is the model's input size, ``image_wh`` the original's."""
    block = ANSWER.search(completion)
    found = REC_BOX.search(block.group(1).strip()) if block else None
    if found is None:
        return 0.0
    return pixel_iou(_rescaled([int(g) for g in found.groups()], input_wh, image_wh), truth)


def rec_hit(completion: str, truth: list[float], input_wh: tuple[int, int], image_wh: tuple[int, int]) -> float:
    """VLM-R1's REC evaluation: the box inside ``{...}`` (else [0, 0, 0, 0]), correct when IoU > 0.5."""
    block = ANSWER.search(completion)
    found = REC_EVAL_BOX.search(block.group(1).strip()) if block else None
    box = [int(g) for g in found.groups()] if found else [0, 0, 0, 0]
    return 1.0 if pixel_iou(_rescaled(box, input_wh, image_wh), truth) > 0.5 else 0.0


def rec_format(completion: str) -> float:
    return 1.0 if REC_FORMAT.search(completion) else 0.0


def format_reward(completion: str) -> float:
    return 1.0 if FORMAT.fullmatch(completion) else 0.0


def _fenced_items(text: str) -> list:
    """The items of the last ```json fence; [] when there is none or it does not load or iterate."""
    fences = FENCE.findall(text)
    if not fences:
        return []
    try:
        return list(json.loads(fences[-1].strip()))
    except Exception:  # noqa: BLE001 (VLM-R1 treats any failure here as no prediction)
        return []


def _xywh(b) -> list:
    return [b[0], b[1], b[2] - b[0], b[3] - b[1]]


def coco_ap(pred: list, truth: list[dict], score_type: int = 0) -> float:
    """COCOeval stats[score_type] for one image; predictions that cannot be read are skipped."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats: dict[str, int] = {}
    anns = []
    for k, t in enumerate(truth):
        cats.setdefault(t["label"], len(cats))
        box = _xywh(t["bbox_2d"])
        anns.append(
            {"id": k + 1, "image_id": 0, "category_id": cats[t["label"]], "bbox": box, "area": box[2] * box[3]}
        )
        anns[-1]["iscrowd"] = 0
    dets = []
    for p in pred:
        try:
            box = _xywh(p["bbox_2d"])
            dets.append({"image_id": 0, "category_id": cats[p["label"]], "bbox": box, "score": 1.0})
        except Exception:  # noqa: BLE001 (any unreadable item is skipped, as VLM-R1 does)
            continue
    if not dets:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": [{"id": 0, "width": 2048, "height": 2048}],
            "categories": [{"id": i, "name": n} for n, i in cats.items()],
            "annotations": anns,
        }
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[score_type])


def od_reward(completion: str, truth_answer: str, score_type: int = 0, length_penalty: bool = False) -> float:
    """``od_ap`` (score_type 0), ``od_ap50`` (1) and ``odLength`` (length_penalty) against the answer text."""
    blocks = ANSWER.findall(completion)
    if not blocks:
        return 0.0
    student, truth_answer = blocks[-1].strip(), truth_answer.strip()
    if truth_answer == "None" and student == "None":
        return 1.0
    truth, pred = _fenced_items(truth_answer), _fenced_items(student)
    if pred and truth:
        value = coco_ap(pred, truth, 0 if length_penalty else score_type)
    else:
        value = 1.0 if not pred and not truth else 0.0
    if length_penalty and len(pred) > len(truth):
        value *= len(truth) / len(pred)
    return value


def answer_boxes(task: str, completion: str, input_wh: tuple[int, int], image_wh: tuple[int, int]):
    """What this dialect's rewards read as the answer's boxes: REC the box the IoU reward finds, rescaled to the
    original image; OVD the ``bbox_2d`` items of the last fence of the last answer, unscaled. ``None``: nothing
    parses (no answer block, no box; an OVD answer with no fence is the empty answer). Returns
    ``vlmr1.answers.Detection`` items (REC: one, labelled "")."""
    from vlmr1.answers import Detection

    if task == "rec":
        block = ANSWER.search(completion)
        found = REC_BOX.search(block.group(1).strip()) if block else None
        if found is None:
            return None
        return [Detection("", tuple(_rescaled([int(g) for g in found.groups()], input_wh, image_wh)))]
    blocks = ANSWER.findall(completion)
    if not blocks:
        return None
    out = []
    for item in _fenced_items(blocks[-1].strip()):
        try:
            box = tuple(float(v) for v in item["bbox_2d"])
            label = " ".join(str(item["label"]).split()).lower()
        except Exception:  # noqa: BLE001 (an unreadable item is skipped, as the AP reward skips it)
            continue
        if len(box) == 4:
            out.append(Detection(label, box))
    return out


# reward name -> how the dialect computes it for one row of its task (see the module docstring)
def _row(name: str, completion: str, targets, image_wh, input_wh) -> float:
    if name in ("iou", "hit@0.5"):
        truth = list(targets[0].bbox)
        return (rec_iou if name == "iou" else rec_hit)(completion, truth, input_wh, image_wh)
    truth_answer = answer_text("ovd", targets)
    if name == "map":
        return od_reward(completion, truth_answer)
    if name == "ap50":
        return od_reward(completion, truth_answer, score_type=1)
    return od_reward(completion, truth_answer, length_penalty=True)  # od_length


def score_batch(name: str, task: str | None, batch):
    """A ``vlmr1.rewards.RewardBatch`` scored in this dialect by reward ``name`` of ``task``: NaN for rows of
    another task, as ours."""
    import numpy as np

    out = np.full(len(batch.completions), np.nan)
    for i, completion in enumerate(batch.completions):
        row_task = batch.tasks[i]
        if name == "format":
            out[i] = rec_format(completion) if row_task == "rec" else format_reward(completion)
            continue
        if row_task != task:
            continue
        w, h = int(batch.widths[i]), int(batch.heights[i])
        input_wh = batch.resized[i] if batch.resized and batch.resized[i] else batch.frame.input_size(w, h)
        out[i] = _row(name, completion, batch.solutions[i], (w, h), input_wh)
    return out
