"""A chosen sample with everything its review card shows: image, labels, the scorer's answers, the parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from curation import catalog
from curation.difficulty.label_quality import scorer_reading, stored_completions
from vlmr1.answers import Detection
from vlmr1.records import Target, parse_solution
from vlmr1.rewards import read_boxes

PARTS = ("score", "agreement", "support", "consensus_iou", "other_iou", "worst", "parsed", "k")


@dataclass
class Item:
    sample_id: str
    source: str
    task: str
    problem: str
    image_path: str | None
    width: int
    height: int
    labels: tuple[Target, ...]
    fired: str
    answers: list[list[Detection] | None] = field(default_factory=list)
    consensus: list[float] | None = None
    parts: dict = field(default_factory=dict)  # label quality under the scorer (PARTS); empty: not computed
    boxes: list[dict] = field(default_factory=list)  # OVD: per label box and overlooked object


def gather(catalog_path: str | Path, chosen: list[tuple[str, str]], scorer: str | None) -> list[Item]:
    """The cards of ``chosen`` (in its order); answers and parts only where ``scorer`` scored the sample."""
    ids = [sid for sid, _ in chosen]
    fired = dict(chosen)
    with catalog.read_only(catalog_path) as con:
        rows = con.execute(
            "SELECT sample_id, source, task, problem, image_path, width, height, solution FROM samples "
            "WHERE sample_id IN (SELECT unnest($ids))", {"ids": ids}).fetchall()  # fmt: skip
        items = {r[0]: Item(*r[:7], labels=parse_solution(r[7]), fired=fired[r[0]]) for r in rows}
        if scorer:
            _with_scorer(con, scorer, ids, items)
    return [items[sid] for sid in ids if sid in items]


def _with_scorer(con, scorer: str, ids: list[str], items: dict[str, Item]) -> None:
    dialect, frame = scorer_reading(con, scorer)
    args = {"key": scorer, "ids": ids}
    for sid, texts in stored_completions(con, scorer, ids).items():
        it = items[sid]
        it.answers = [read_boxes(dialect, it.task, t, frame, it.width, it.height) for t in texts]
    cols = ", ".join(PARTS)
    for sid, consensus, *parts in con.execute(
        f"SELECT sample_id, consensus, {cols} FROM label_quality WHERE scorer_key = $key "
        "AND sample_id IN (SELECT unnest($ids))", args).fetchall():  # fmt: skip
        items[sid].consensus, items[sid].parts = consensus, dict(zip(PARTS, parts))
    for sid, *row in con.execute(
        "SELECT sample_id, box_index, label, [x1, y1, x2, y2], kind, hits, score FROM label_quality_boxes "
        "WHERE scorer_key = $key AND sample_id IN (SELECT unnest($ids)) ORDER BY sample_id, score DESC",
        args,
    ).fetchall():
        items[sid].boxes.append(dict(zip(("box_index", "label", "box", "kind", "hits", "score"), row)))
