"""Rule-based rewards (VLM-R1), batched, with a registry and a TRL adapter.

Rewards take completions in the model's box frame and ground truth in
original pixels; predicted boxes are converted to original pixels before any
comparison (``boxes.BoxFrame``). Every reward returns a float in [0, 1] for a
row of its task and NaN for a row of another task (the TRL adapter turns NaN
into None, which TRL skips), so one reward list serves mixed REC+OVD data.

- ``format``: REC: tags well formed and a box parses; OVD: tags well formed
  and the answer is "None" or a list of valid detections.
- ``iou``: REC, continuous IoU (what VLM-R1 trains on). Area IoU as in
  pycocotools. (VLM-R1's helper counts the intersection inclusively and the
  areas exclusively: on well-formed answers it agrees to 1e-13 except for
  boxes overlapping by at most one pixel, which it scores 0. The ``vlmr1``
  dialect, ``vlmr1.dialect_vlmr1``, reproduces it; README has the table.)
- ``hit@0.5``: REC, IoU >= 0.5 (Acc@0.5, what VLM-R1 evaluates).
- ``map`` / ``ap50``: OVD, COCO AP@[.5:.95] / AP50 (101-point), as COCOeval.
- ``od_length``: OVD, ``min(1, n_gt / n_pred) * map``; both empty: 1, one
  empty: 0, unparseable: 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable, Literal, Sequence

import numpy as np

from vlmr1 import answer_boxes, dialect_vlmr1
from vlmr1.answers import normalize_label, parse_ovd, parse_rec_box, split_tags
from vlmr1.boxes import BoxFrame, iou_pairwise
from vlmr1.coco_ap import AREA_MAX, MAX_DETS, coco_ap_flat
from vlmr1.records import Target, parse_solution

REWARD_VERSION = 1


@dataclass
class RewardBatch:
    """Inputs for a batch of completions; ``resized`` is per row (w, h) or None."""

    completions: list[str]
    solutions: list[tuple[Target, ...]]
    widths: np.ndarray
    heights: np.ndarray
    tasks: list[str]
    frame: BoxFrame
    resized: list[tuple[int, int] | None]
    # Parsed-and-scored intermediates shared by rewards of one batch (iou and
    # hit@0.5; map, ap50 and od_length), so asking for several costs one pass.
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def memo(self, key: str, rows: np.ndarray, compute: Callable):
        cache_key = (key, rows.tobytes())
        if cache_key not in self._memo:
            self._memo[cache_key] = compute(self, rows)
        return self._memo[cache_key]

    @classmethod
    def from_rows(cls, completions: Sequence, rows: Sequence[dict], frame: BoxFrame | None = None) -> "RewardBatch":
        """A batch over sample rows (``solution``, ``width``, ``height``, ``task``): evaluation and ablations."""
        columns = ([r[k] for r in rows] for k in ("solution", "width", "height", "task"))
        return cls.build(completions, *columns, frame, None)

    @classmethod
    def build(
        cls,
        completions: Sequence,
        solutions: Sequence,
        widths: Sequence,
        heights: Sequence,
        tasks: Sequence[str] | str,
        frame: BoxFrame | None = None,
        resized: Sequence | None = None,
    ) -> "RewardBatch":
        n = len(completions)
        if isinstance(tasks, str):
            tasks = [tasks] * n
        for name, col in (("solutions", solutions), ("widths", widths), ("heights", heights), ("tasks", tasks)):
            if len(col) != n:
                raise ValueError(f"{name} has {len(col)} rows, completions has {n}")
        return cls(
            completions=[completion_text(c) for c in completions],
            solutions=[_solution(s, i) for i, s in enumerate(solutions)],
            widths=np.asarray(widths, dtype=np.float64),
            heights=np.asarray(heights, dtype=np.float64),
            tasks=list(tasks),
            frame=frame or BoxFrame(),
            resized=list(resized) if resized is not None else [None] * n,
        )

    def rows(self, task: str) -> np.ndarray:
        return np.array([i for i, t in enumerate(self.tasks) if t == task], dtype=np.int64)


def completion_text(completion) -> str:
    """Text of a completion: a string, or TRL's conversational ``[{role, content}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        content = completion.get("content", "")
        if isinstance(content, list):
            return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else ""
    if isinstance(completion, (list, tuple)):
        return "".join(
            completion_text(m) for m in completion if isinstance(m, dict) and m.get("role", "assistant") == "assistant"
        )
    return ""


@lru_cache(maxsize=65_536)
def _solution_from_json(text: str) -> tuple[Target, ...]:
    return parse_solution(text, "solution")


def _solution(value, row: int) -> tuple[Target, ...]:
    """Parsed targets. JSON strings are cached: the G completions of a GRPO group share one."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, str):
        try:
            return _solution_from_json(value)
        except ValueError as exc:
            raise ValueError(f"solution row {row}: {exc}") from None
    return parse_solution(value, f"solution row {row}")


def _frame_scales(batch: RewardBatch, rows: np.ndarray) -> np.ndarray:
    """Per row, the (4,) factors that take the model's frame to original pixels."""
    if batch.frame.kind == "abs_original":
        return np.ones((len(rows), 4))
    extents = {}
    out = np.empty((len(rows), 4))
    for k, i in enumerate(rows):
        key = (batch.widths[i], batch.heights[i], batch.resized[i])
        if key not in extents:
            fw, fh = batch.frame.extent(key[0], key[1], key[2])
            extents[key] = (key[0] / fw, key[1] / fh, key[0] / fw, key[1] / fh)
        out[k] = extents[key]
    return out


def _rec_ious(batch: RewardBatch, rows: np.ndarray) -> np.ndarray:
    preds = np.zeros((len(rows), 4))
    gts = np.zeros((len(rows), 4))
    parsed = np.zeros(len(rows), bool)
    for k, i in enumerate(rows):
        answer = split_tags(batch.completions[i]).answer
        box = parse_rec_box(answer) if answer is not None else None
        gts[k] = batch.solutions[i][0].bbox
        if box is not None:
            preds[k] = box
            parsed[k] = True
    with np.errstate(all="ignore"):
        ious = iou_pairwise(preds * _frame_scales(batch, rows), gts)
    return np.where(parsed, np.clip(ious, 0.0, 1.0), 0.0)


@dataclass
class _OvdParsed:
    """OVD rows parsed once, as the flat arrays ``coco_ap_flat`` takes (boxes already in original pixels)."""

    n_gt: np.ndarray
    n_pred: np.ndarray
    parsed: np.ndarray
    gt_case: list
    gt_label: list
    gt_box: np.ndarray
    dt_case: list
    dt_label: list
    dt_box: np.ndarray


def _parse_ovd_rows(batch: RewardBatch, rows: np.ndarray) -> _OvdParsed:
    """The one OVD parse: rewards and dataset-level evaluation both read it, so they cannot disagree."""
    n = len(rows)
    n_gt, n_pred = np.zeros(n), np.zeros(n)
    parsed = np.zeros(n, bool)
    ids: dict[str, int] = {}
    gt_case, gt_label, gt_box, dt_case, dt_label, dt_box = [], [], [], [], [], []
    for k, i in enumerate(rows):
        sol = batch.solutions[i]
        n_gt[k] = len(sol)
        for t in sol:
            gt_case.append(k)
            gt_label.append(ids.setdefault(normalize_label(t.label), len(ids)))
            gt_box.append(t.bbox)
        answer = split_tags(batch.completions[i]).answer
        ovd = parse_ovd(answer) if answer is not None else None
        if ovd is None:
            continue
        parsed[k] = True
        n_pred[k] = ovd.n_pred
        for d in ovd.detections:
            dt_case.append(k)
            dt_label.append(ids.setdefault(d.label, len(ids)))
            dt_box.append(d.bbox)
    dt_boxes = np.array(dt_box, dtype=np.float64).reshape(-1, 4)
    with np.errstate(all="ignore"):
        dt_boxes = dt_boxes * _frame_scales(batch, rows)[np.asarray(dt_case, np.int64)]
    gt_boxes = np.array(gt_box, dtype=np.float64).reshape(-1, 4)
    return _OvdParsed(n_gt, n_pred, parsed, gt_case, gt_label, gt_boxes, dt_case, dt_label, dt_boxes)


def _ovd_scores(batch: RewardBatch, rows: np.ndarray) -> dict[str, np.ndarray]:
    """map, ap50 and od_length for OVD rows, with VLM-R1's empty-answer rules."""
    p = _parse_ovd_rows(batch, rows)
    n_gt, n_pred, parsed = p.n_gt, p.n_pred, p.parsed
    with np.errstate(all="ignore"):
        m_ap, ap50 = coco_ap_flat(len(rows), p.gt_case, p.gt_label, p.gt_box, p.dt_case, p.dt_label, p.dt_box)
        penalty = np.where(n_pred > 0, np.minimum(1.0, n_gt / np.maximum(n_pred, 1)), 0.0)
    both_empty = parsed & (n_gt == 0) & (n_pred == 0)
    one_empty = ~both_empty & ((n_gt == 0) | (n_pred == 0))

    def finish(values: np.ndarray) -> np.ndarray:
        values = np.where(one_empty | ~parsed, 0.0, np.nan_to_num(values, nan=0.0))
        return np.clip(np.where(both_empty, 1.0, values), 0.0, 1.0)

    return {"map": finish(m_ap), "ap50": finish(ap50), "od_length": finish(penalty * np.nan_to_num(m_ap, nan=0.0))}


def _format(batch: RewardBatch) -> np.ndarray:
    out = np.full(len(batch.completions), np.nan)
    for i, (text, task) in enumerate(zip(batch.completions, batch.tasks)):
        tagged = split_tags(text)
        ok = tagged.well_formed and tagged.answer is not None
        if ok and task == "rec":
            ok = parse_rec_box(tagged.answer) is not None
        elif ok and task == "ovd":
            ovd = parse_ovd(tagged.answer)
            ok = ovd is not None and ovd.invalid == 0
        elif task not in ("rec", "ovd"):
            continue
        out[i] = 1.0 if ok else 0.0
    return out


def _task_reward(task: str, compute: Callable[[RewardBatch, np.ndarray], np.ndarray]):
    def run(batch: RewardBatch) -> np.ndarray:
        out = np.full(len(batch.completions), np.nan)
        rows = batch.rows(task)
        if len(rows):
            out[rows] = compute(batch, rows)
        return out

    return run


@dataclass(frozen=True)
class RewardSpec:
    name: str
    task: str | None  # None: applies to every task
    fn: Callable[[RewardBatch], np.ndarray]
    doc: str
    version: int = REWARD_VERSION


REGISTRY: dict[str, RewardSpec] = {
    spec.name: spec
    for spec in (
        RewardSpec("format", None, _format, "think/answer tags well formed and the answer parses for its task"),
        RewardSpec(
            "iou",
            "rec",
            _task_reward("rec", lambda b, r: b.memo("rec", r, _rec_ious)),
            "REC: IoU of the answer box with the target",
        ),
        RewardSpec(
            "hit@0.5",
            "rec",
            _task_reward("rec", lambda b, r: (b.memo("rec", r, _rec_ious) >= 0.5).astype(np.float64)),
            "REC: 1 if IoU >= 0.5",
        ),
        RewardSpec(
            "map",
            "ovd",
            _task_reward("ovd", lambda b, r: b.memo("ovd", r, _ovd_scores)["map"]),
            "OVD: COCO AP@[.5:.95]",
        ),
        RewardSpec(
            "ap50", "ovd", _task_reward("ovd", lambda b, r: b.memo("ovd", r, _ovd_scores)["ap50"]), "OVD: COCO AP50"
        ),
        RewardSpec(
            "od_length",
            "ovd",
            _task_reward("ovd", lambda b, r: b.memo("ovd", r, _ovd_scores)["od_length"]),
            "OVD: min(1, n_gt/n_pred) x mAP, VLM-R1's None rules",
        ),
    )
}


def get_reward(name: str) -> RewardSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown reward {name!r}; known: {sorted(REGISTRY)}") from None


def dataset_map(batch: RewardBatch, rows: Sequence[int] | None = None) -> tuple[float | None, float | None]:
    """Dataset-level COCO (mAP@[.5:.95], AP50) over OVD ``rows`` (default: every OVD row), as one COCOeval would.

    Same parse and kernel as the ``map`` reward. COCOeval matches detections within an image and accumulates a
    category over all images in image order (every score is 1.0): placing image i's boxes at offset (i*S, i*S),
    S wider than any box spans, keeps every match inside its image, so one ``coco_ap_flat`` case over the shifted
    boxes is the dataset's AP. maxDets=100 applies per image and category, so that cap is applied before shifting.
    None, None when no row has ground truth (COCOeval's -1).
    """
    rows = batch.rows("ovd") if rows is None else np.asarray(rows, dtype=np.int64)
    p = _parse_ovd_rows(batch, rows)
    if not len(p.gt_box):
        return None, None
    dt_case, dt_label = np.asarray(p.dt_case, np.int64), np.asarray(p.dt_label, np.int64)
    if len(dt_case):
        rank = np.zeros(len(dt_case), np.int64)
        counts: dict[tuple[int, int], int] = {}
        for j, key in enumerate(zip(dt_case.tolist(), dt_label.tolist())):
            rank[j] = counts.get(key, 0)
            counts[key] = rank[j] + 1
        keep = rank < MAX_DETS
        dt_case, dt_label, dt_box = dt_case[keep], dt_label[keep], p.dt_box[keep]
    else:
        dt_box = p.dt_box
    # A detection reaching beyond 4M (M: the largest GT coordinate) cannot reach IoU 0.5 with any GT; it only
    # counts as a false positive, or not at all when its area is out of range: a 1 px stand-in keeps exactly
    # that, and keeps the shifts small enough for float precision.
    reach = 4.0 * np.ceil(np.abs(p.gt_box).max()) + 4.0
    far = ~(np.abs(dt_box) <= reach).all(1)
    if far.any():
        area = (dt_box[far, 2] - dt_box[far, 0]) * (dt_box[far, 3] - dt_box[far, 1])
        ignored = ~((area >= 0) & (area <= AREA_MAX))
        dt_box = dt_box.copy()
        dt_box[far] = np.where(
            ignored[:, None], [reach, reach, reach - 1, reach + 1], [reach, reach, reach + 1, reach + 1]
        )
    span = 2.0 * reach + 4.0
    gt_shift = (np.asarray(p.gt_case, np.float64) * span)[:, None]
    dt_shift = (dt_case.astype(np.float64) * span)[:, None]
    with np.errstate(all="ignore"):
        m_ap, ap50 = coco_ap_flat(
            1,
            np.zeros(len(p.gt_case), np.int64),
            p.gt_label,
            p.gt_box + gt_shift,
            np.zeros(len(dt_case), np.int64),
            dt_label,
            dt_box + dt_shift,
            max_dets=len(dt_case) + 1,
        )
    return (None, None) if np.isnan(m_ap[0]) else (float(m_ap[0]), float(ap50[0]))


# Reward dialects: ours (robust parsing, every box in original pixels) and VLM-R1's released semantics
# (``vlmr1.dialect_vlmr1``). The dialect is part of the scorer key, the shard manifest and the training config,
# whose fields are typed ``Dialect``; the registry below is the only other place a dialect is named.
def _ours(name: str, batch: RewardBatch) -> np.ndarray:
    return get_reward(name).fn(batch)


def _vlmr1s(name: str, batch: RewardBatch) -> np.ndarray:
    return dialect_vlmr1.score_batch(name, get_reward(name).task, batch)


@dataclass(frozen=True)
class DialectSpec:
    """A dialect: how it scores a batch, and how it reads one completion's boxes (``vlmr1.answer_boxes``: what
    label quality compares, so it sees the boxes the rewards saw)."""

    score: Callable[[str, RewardBatch], np.ndarray]
    boxes: Callable[..., list | None]


DIALECTS: dict[str, DialectSpec] = {
    "vlmr1-curate": DialectSpec(_ours, answer_boxes.read_ours),
    "vlmr1": DialectSpec(_vlmr1s, answer_boxes.read_vlmr1),
}
Dialect = Literal[tuple(DIALECTS)]  # the type of every config field that names a dialect (pydantic checks it)
DEFAULT_DIALECT: str = next(iter(DIALECTS))


def check_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown reward dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    return dialect


def score(name: str, batch: RewardBatch, dialect: Dialect = DEFAULT_DIALECT) -> np.ndarray:
    """Reward ``name`` for every row: float in [0, 1], NaN where the row's task does not apply."""
    return DIALECTS[check_dialect(dialect)].score(name, batch)


def read_boxes(dialect: str, task: str, completion: str, frame: BoxFrame, width: int, height: int):
    """One completion's detections in original pixels as ``dialect`` reads them (REC: one, labelled ""); None when
    it does not parse."""
    return DIALECTS[check_dialect(dialect)].boxes(task, completion, frame, width, height)


def default_task(name: str) -> str:
    """The task a reward implies when the input carries none (CLI, fuzzing)."""
    return get_reward(name).task or "rec"


def trl_reward(
    name: str, frame: BoxFrame | None = None, dialect: str = DEFAULT_DIALECT
) -> Callable[..., list[float | None]]:
    """A TRL reward function ``f(completions, **columns)`` for reward ``name``.

    Reads the dataset columns ``solution``, ``width``, ``height`` and, when
    present, ``task`` and ``resized_width``/``resized_height``.
    """
    spec = get_reward(name)
    frame = frame or BoxFrame()
    check_dialect(dialect)

    def reward(completions: list, solution: list, width: list, height: list, **columns) -> list[float | None]:
        tasks = columns.get("task") or default_task(name)
        rw, rh = columns.get("resized_width"), columns.get("resized_height")
        resized = list(zip(rw, rh)) if rw is not None and rh is not None else None
        batch = RewardBatch.build(completions, solution, width, height, tasks, frame, resized)
        return [None if math.isnan(v) else float(v) for v in score(spec.name, batch, dialect)]

    reward.__name__ = name.replace("@", "_at_").replace(".", "")
    return reward


def score_rows(name: str, rows: Iterable[dict], frame: BoxFrame) -> list[float | None]:
    """Score JSON-like rows ``{completion, solution, width, height[, task, resized_*]}``; a row of the other task
    gets None (TRL's marker: the reward does not apply), never a 0 that reads as a wrong answer."""
    rows = list(rows)
    task = default_task(name)
    batch = RewardBatch.build(
        [r.get("completion", "") for r in rows],
        [r["solution"] for r in rows],
        [r["width"] for r in rows],
        [r["height"] for r in rows],
        [r.get("task", task) for r in rows],
        frame,
        [(r["resized_width"], r["resized_height"]) if "resized_width" in r else None for r in rows],
    )
    return [None if math.isnan(v) else float(v) for v in score(name, batch)]
