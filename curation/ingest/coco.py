"""COCO instances json -> images, annotations and one OVD sample per image.

A broken (e.g. truncated) file still yields every record before the break,
and the break itself becomes a reject (``load_sections``). Each bad record becomes a reject naming the file,
section, index and reason; the rest of the file is ingested.

OVD samples: the prompt lists the categories present (non-crowd boxes) plus
``absent`` categories not in the image at all, shuffled with a per-image
seed, so the order never tells which are present. The solution holds every
non-crowd box. Images with no box are kept as "None" samples.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import ijson

from vlmr1.prompts import ovd_phrases
from vlmr1.records import Target, make_sample_id, solution_json

SECTIONS = ("categories", "images", "annotations")


@dataclass
class Reject:
    section: str
    record_index: int | None
    record_id: str | None
    reason: str


@dataclass
class CocoParse:
    """What a COCO file holds once validated: rows ready for the catalog."""

    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    n_records: int = 0


def load_sections(path: Path, rejects: list[Reject]) -> dict[str, list]:
    """The file's top-level arrays.

    Whole-file ``json`` first (fast; accepts NaN, which COCO writers emit).
    If the file is broken (truncated, say), each section is streamed with
    ijson up to the break, and the break becomes a reject.
    """
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except ValueError as exc:
        rejects.append(Reject("file", None, None, f"JSON unreadable: {exc}; salvaging the records before the error"))
        return {section: list(_stream(path, section)) for section in SECTIONS}
    if not isinstance(data, dict):
        rejects.append(Reject("file", None, None, f"JSON unreadable: top level is {type(data).__name__}, not an object"))
        return {section: [] for section in SECTIONS}
    out = {}
    for section in SECTIONS:
        value = data.get(section, [])
        if not isinstance(value, list):
            rejects.append(Reject(section, None, None, f"section is not a list: {type(value).__name__}"))
            value = []
        out[section] = value
    return out


def _stream(path: Path, section: str):
    """Records of one top-level array, up to the first parse error."""
    try:
        with open(path, "rb") as fh:
            yield from ijson.items(fh, f"{section}.item", use_float=True)
    except (ijson.JSONError, ijson.IncompleteJSONError, ValueError):
        return


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def split_name(path: Path) -> str:
    """``instances_train2017.json`` -> ``train2017``."""
    stem = path.stem
    return stem.split("instances_", 1)[1] if "instances_" in stem else stem


def parse_coco(path: str | Path, *, source: str = "coco", split: str | None = None, absent: int = 3, seed: int = 0,
               file_sha256: str | None = None) -> CocoParse:
    path = Path(path)
    split = split or split_name(path)
    out = CocoParse()
    rej = out.rejects

    sections = load_sections(path, rej)
    categories: dict[int, str] = {}
    for i, c in enumerate(sections["categories"]):
        out.n_records += 1
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str) or not c["name"].strip():
            rej.append(Reject("categories", i, str(c.get("id")) if isinstance(c, dict) else None, "category needs an integer id and a non-empty name"))
        elif c["id"] in categories:
            rej.append(Reject("categories", i, str(c["id"]), "duplicate category id"))
        else:
            categories[c["id"]] = c["name"].strip()

    images: dict[int, dict] = {}
    for i, im in _valid_images(sections["images"], rej, out):
        if im["image_id"] in images:
            rej.append(Reject("images", i, str(im["image_id"]), "duplicate image id"))
            continue
        images[im["image_id"]] = im
    boxes: dict[int, list[dict]] = {k: [] for k in images}
    seen_ann: set[int] = set()
    for i, a in enumerate(sections["annotations"]):
        out.n_records += 1
        reason = _annotation_problem(a, images, categories, seen_ann)
        if reason:
            rid = str(a.get("id")) if isinstance(a, dict) else None
            rej.append(Reject("annotations", i, rid, reason))
            continue
        x, y, w, h = (float(v) for v in a["bbox"])
        seen_ann.add(a["id"])
        row = {"ann_id": a["id"], "image_id": a["image_id"], "category_id": a["category_id"], "category": categories[a["category_id"]],
               "x1": x, "y1": y, "x2": x + w, "y2": y + h, "area": float(a["area"]) if _is_num(a.get("area")) else w * h,
               "iscrowd": bool(a.get("iscrowd", 0))}
        out.annotations.append(row)
        boxes[a["image_id"]].append(row)

    out.images = list(images.values())
    names = sorted(set(categories.values()))
    for image_id, im in images.items():
        anns = sorted(boxes[image_id], key=lambda r: r["ann_id"])
        kept = [r for r in anns if not r["iscrowd"]]
        present = sorted({r["category"] for r in kept})
        in_image = {r["category"] for r in anns}
        rng = random.Random(f"{seed}:{split}:{image_id}")
        candidates = [n for n in names if n not in in_image]
        phrases = present + rng.sample(candidates, min(absent, len(candidates)))
        rng.shuffle(phrases)
        solution = solution_json(_targets(kept))
        out.samples.append({
            "sample_id": make_sample_id(source, (split, image_id)), "source": source, "split": split, "task": "ovd",
            "image_key": im["image_key"], "width": im["width"], "height": im["height"], "problem": ovd_phrases(phrases),
            "problem_raw": None, "solution": solution, "image_id": image_id, "ann_id": None, "ref_id": None, "sent_id": None,
            "category_ids": sorted({r["category_id"] for r in kept}), "source_sha256": file_sha256,
        })
    return out


def _targets(rows: list[dict]) -> list[Target]:
    return [Target(r["category"], (r["x1"], r["y1"], r["x2"], r["y2"])) for r in rows]


def _valid_images(records: list, rej: list[Reject], out: CocoParse):
    for i, im in enumerate(records):
        out.n_records += 1
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            rej.append(Reject("images", i, None, "image needs an integer id"))
            continue
        w, h, name = im.get("width"), im.get("height"), im.get("file_name")
        if not (_is_int(w) and _is_int(h)) or w <= 0 or h <= 0:
            rej.append(Reject("images", i, str(im["id"]), f"width/height must be positive integers: {w!r}x{h!r}"))
        elif not isinstance(name, str) or not name:
            rej.append(Reject("images", i, str(im["id"]), "file_name missing"))
        else:
            yield i, {"image_id": im["id"], "image_key": name, "width": w, "height": h}


def _annotation_problem(a, images: dict, categories: dict, seen: set) -> str | None:
    if not isinstance(a, dict) or not _is_int(a.get("id")):
        return "annotation needs an integer id"
    if a["id"] in seen:
        return "duplicate annotation id"
    if a.get("image_id") not in images:
        return f"unknown image id: {a.get('image_id')!r}"
    if a.get("category_id") not in categories:
        return f"unknown category id: {a.get('category_id')!r}"
    bbox = a.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_num(v) for v in bbox):
        return f"bbox must be 4 finite numbers: {bbox!r}"
    if bbox[2] <= 0 or bbox[3] <= 0:
        return f"bbox has no area: w={bbox[2]}, h={bbox[3]}"
    return None
