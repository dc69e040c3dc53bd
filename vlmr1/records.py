"""The canonical sample: one row per RL prompt (ARCHITECTURE.md, "The canonical sample").

Boxes are absolute pixels of the original image, ``[x1, y1, x2, y2]``. The
arrow schema is what the catalog exports and shards store; ``Sample`` is the
typed view with validation, so a bad row fails with the field that is wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal

import pyarrow as pa

Task = Literal["rec", "ovd"]
TASKS: tuple[str, ...] = ("rec", "ovd")
MAX_BOX_AREA = 1e10  # COCO's 'all' area range; larger boxes are not images

SAMPLE_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("image_key", pa.string(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("problem", pa.string(), nullable=False),
        pa.field("solution", pa.string(), nullable=False),  # JSON list of {"label", "bbox"}
        # lineage: where the sample came from in its source
        pa.field("image_id", pa.int64()),
        pa.field("ann_id", pa.int64()),
        pa.field("ref_id", pa.int64()),
        pa.field("sent_id", pa.int64()),
        pa.field("category_ids", pa.list_(pa.int64())),
        pa.field("source_sha256", pa.string()),
    ]
)


def safe_text(value) -> str:
    """``str(value)`` that can always be written as UTF-8: a lone surrogate (legal in JSON's ``\\ud800``, not in
    UTF-8) becomes its escape, so one such record id cannot fail a whole file's transaction."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def make_sample_id(source: str, native_key: str | int | tuple) -> str:
    """Stable id from (source, source-native key): same input, same id, forever.

    96 bits of sha256: a collision among 10^8 samples has probability ~1e-13.
    """
    if isinstance(native_key, tuple):
        native_key = "/".join(str(k) for k in native_key)
    digest = hashlib.sha256(f"{source}\x1f{native_key}".encode()).hexdigest()
    return digest[:24]


def sample_id_sql(*key_parts: str) -> str:
    """``make_sample_id`` as a DuckDB expression, for readers that stage in SQL: the same rule, the same ids.

    The first ``?`` parameter is the source; ``key_parts`` are SQL
    expressions joined with ``/`` as a tuple key is.
    """
    key = " || '/' || ".join(f"({part})::VARCHAR" for part in key_parts)
    return f"left(sha256(?::VARCHAR || chr(31) || {key}), 24)"


@dataclass(frozen=True)
class Target:
    label: str
    bbox: tuple[float, float, float, float]

    def to_json(self) -> dict:
        return {"label": self.label, "bbox": list(self.bbox)}


def validate_box(bbox: Any, where: str) -> tuple[float, float, float, float]:
    """A finite xyxy box with positive area, else ValueError naming ``where``."""
    if type(bbox) in (list, tuple) and len(bbox) == 4 and all(type(v) in (int, float) for v in bbox):
        x1, y1, x2, y2 = bbox
        # Fast path. NaN fails the comparisons; any infinity makes the area inf.
        if x1 < x2 and y1 < y2 and (x2 - x1) * (y2 - y1) <= MAX_BOX_AREA:
            return (float(x1), float(y1), float(x2), float(y2))
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise ValueError(f"{where}: bbox must be 4 numbers, got {bbox!r}")
    try:
        x1, y1, x2, y2 = (float(v) for v in bbox)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: bbox must be 4 numbers, got {bbox!r}") from exc
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f"{where}: bbox has a non-finite value: {bbox!r}")
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"{where}: bbox has no area (x2 <= x1 or y2 <= y1): {bbox!r}")
    if (x2 - x1) * (y2 - y1) > MAX_BOX_AREA:
        raise ValueError(f"{where}: bbox area above {MAX_BOX_AREA:g}: {bbox!r}")
    return (x1, y1, x2, y2)


def parse_solution(solution: str | Iterable[dict], where: str = "solution") -> tuple[Target, ...]:
    """Targets from a JSON string or a list of ``{"label", "bbox"}`` dicts (``bbox_2d`` accepted)."""
    items = json.loads(solution) if isinstance(solution, str) else solution
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{where}: must be a list of targets, got {type(items).__name__}")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, Target):
            out.append(item)
            continue
        if not isinstance(item, dict):
            raise ValueError(f"{where}[{i}]: must be an object, got {item!r}")
        label = item.get("label")
        if not isinstance(label, str):
            raise ValueError(f"{where}[{i}]: label must be a string, got {label!r}")
        bbox = item["bbox"] if "bbox" in item else item.get("bbox_2d")
        out.append(Target(label, validate_box(bbox, f"{where}[{i}]")))
    return tuple(out)


def solution_json(targets: Iterable[Target]) -> str:
    return json.dumps([t.to_json() for t in targets], separators=(",", ":"))


@dataclass(frozen=True)
class Sample:
    """Typed view of one canonical row. Construction validates it."""

    sample_id: str
    source: str
    split: str
    task: Task
    image_key: str
    width: int
    height: int
    problem: str
    solution: tuple[Target, ...]
    image_id: int | None = None
    ann_id: int | None = None
    ref_id: int | None = None
    sent_id: int | None = None
    category_ids: tuple[int, ...] = field(default_factory=tuple)
    source_sha256: str | None = None

    def __post_init__(self) -> None:
        where = f"sample {self.sample_id}"
        if self.task not in TASKS:
            raise ValueError(f"{where}: task must be one of {TASKS}, got {self.task!r}")
        if not (isinstance(self.width, int) and isinstance(self.height, int)) or self.width <= 0 or self.height <= 0:
            raise ValueError(f"{where}: width/height must be positive integers, got {self.width!r}x{self.height!r}")
        if self.task == "rec" and len(self.solution) != 1:
            raise ValueError(f"{where}: a rec sample has exactly one target, got {len(self.solution)}")
        if not self.image_key:
            raise ValueError(f"{where}: image_key is empty")

    def to_row(self) -> dict:
        row = asdict(self)
        row["solution"] = solution_json(self.solution)
        row["category_ids"] = list(self.category_ids)
        return row

    @classmethod
    def from_row(cls, row: dict) -> "Sample":
        kwargs = {name: row.get(name) for name in SAMPLE_SCHEMA.names}
        kwargs["solution"] = parse_solution(row["solution"], f"sample {row.get('sample_id')}: solution")
        kwargs["category_ids"] = tuple(row.get("category_ids") or ())
        return cls(**kwargs)


def to_table(samples: Iterable[Sample]) -> pa.Table:
    return pa.Table.from_pylist([s.to_row() for s in samples], schema=SAMPLE_SCHEMA)


def from_table(table: pa.Table) -> list[Sample]:
    return [Sample.from_row(row) for row in table.to_pylist()]


def answer_text(task: str, targets: tuple[Target, ...]) -> str:
    """The ground-truth answer as VLM-R1's data writes it, in original pixels: REC a 4-number list, OVD a
    ```json fence of ``{"bbox_2d", "label"}`` items or ``None``. Exact: it parses back to the same boxes."""
    import json

    def box(t: Target) -> list:  # whole numbers as integers, as VLM-R1's released data writes them
        return [int(v) if float(v).is_integer() else v for v in t.bbox]

    if task == "rec":
        return json.dumps(box(targets[0]))
    if not targets:
        return "None"
    return "```json\n" + json.dumps([{"bbox_2d": box(t), "label": t.label} for t in targets]) + "\n```"
