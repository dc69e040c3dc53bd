"""The boxes a completion answers, in original pixels, read the way a reward dialect reads them.

Label quality (``curation.difficulty.label_quality``) compares the k answers a scorer stored with each other and
with the label; it must see the boxes its scorer's rewards saw, so each dialect of ``vlmr1.rewards.DIALECTS``
has its reader here (``rewards.read_boxes`` picks it). ``None`` means the answer does not parse (it is no evidence
either way); an empty list is the answer "None".
"""

from __future__ import annotations

from vlmr1 import dialect_vlmr1
from vlmr1.answers import Detection, parse_ovd, parse_rec_box, split_tags
from vlmr1.boxes import BoxFrame


def _scaled(box, scale: tuple[float, float]) -> tuple[float, float, float, float]:
    sx, sy = scale
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def read_ours(task: str, completion: str, frame: BoxFrame, width: int, height: int) -> list[Detection] | None:
    """vlmr1-curate: the tagged answer, every box taken from the model's frame to original pixels."""
    answer = split_tags(completion).answer
    if answer is None:
        return None
    fw, fh = frame.extent(width, height)
    scale = (width / fw, height / fh)
    if task == "rec":
        box = parse_rec_box(answer)
        return None if box is None else [Detection("", _scaled(box, scale))]
    ovd = parse_ovd(answer)
    return None if ovd is None else [Detection(d.label, _scaled(d.bbox, scale)) for d in ovd.detections]


def read_vlmr1(task: str, completion: str, frame: BoxFrame, width: int, height: int) -> list[Detection] | None:
    """vlmr1: VLM-R1's own reading (``dialect_vlmr1.answer_boxes``): REC rescaled from its input size, OVD boxes
    compared in the frame they are written in."""
    return dialect_vlmr1.answer_boxes(task, completion, frame.input_size(width, height), (width, height))
