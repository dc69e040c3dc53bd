"""``vlmr1 review`` and the stages' top-suspects sheet: choose, gather, draw, write."""

from __future__ import annotations

from pathlib import Path

from curation import catalog
from curation.difficulty.label_quality import SUSPECT
from curation.review.choose import Choice, chosen
from curation.review.coco import write_coco
from curation.review.items import gather
from curation.review.page import write_page, write_sheet
from vlmr1.report import StageReport


def review(catalog_path: str | Path, choice: Choice, out: Path, scorer: str | None, limit: int = 96) -> StageReport:
    """The chosen samples, worst first, as a page and a contact sheet; the scorer's rollouts and the labels of
    every sample it scored as COCO files."""
    picked = chosen(catalog_path, choice, scorer)
    items = gather(catalog_path, picked[:limit], scorer)
    out.mkdir(parents=True, exist_ok=True)
    title = f"review: {choice.describe()}" + (f", scorer {scorer}" if scorer else "")
    files = {"page": str(write_page(items, out / "review.html", title, len(picked))),
             "contact sheet": str(write_sheet(items, out / "review.png", title))}  # fmt: skip
    counts = {"chosen": len(picked), "shown": len(items), "scorer": scorer or "none"}
    if scorer:
        coco = write_coco(catalog_path, scorer, out / "coco")
        counts |= {"coco images": coco.pop("images"), "coco detections": coco.pop("detections")}
        files |= coco
        counts["unknown"] = sum(1 for it in items if it.parts and it.parts["score"] is None)
    notes = [] if scorer else ["no scorer: labels only (score the catalog to see the policy's answers)"]
    return StageReport("review", title, counts, files=files, notes=notes)


def suspects_sheet(catalog_path: str | Path, scorer: str, out: Path, limit: int = 24) -> dict[str, str]:
    """The top suspects under ``scorer`` (label-quality score >= ``SUSPECT``) as a contact sheet, or nothing."""
    with catalog.read_only(catalog_path) as con:
        rows = con.execute(
            "SELECT sample_id, 'label score ' || round(score, 2) FROM label_quality WHERE scorer_key = ? AND "
            "score >= ? ORDER BY score DESC, sample_id LIMIT ?", [scorer, SUSPECT, limit]).fetchall()  # fmt: skip
    if not rows:
        return {}
    out.mkdir(parents=True, exist_ok=True)
    items = gather(catalog_path, rows, scorer)
    return {"suspects": str(write_sheet(items, out / "suspects.png", f"suspect labels, scorer {scorer}", limit))}
