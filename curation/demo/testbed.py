"""The learnable testbed: shape scenes (``curation.demo.shapes``) written as real RefCOCO files (Python 2
pickle + instances.json + JPEGs), with defects planted at known rates, and the recipes its ablation arms use.

Two sources: ``shapes`` (clean labels apart from the planted defects) and ``shapes_noisy`` (the same training refs
with wrong labels planted at set rates, of the three kinds a manual audit of RefCOCO found (Ref-L4): a wrong
referent (the box of another object in the scene), an inaccurate box (the right object, IoU 0.3-0.6 with its true
box: shifted and scaled) and a swapped expression (another object's words). ``label_errors.json`` lists each, by
source and ref id.) The noisy source has byte copies of the
images under its own ids, so the two never read as conflicting references to one image. Planted in ``shapes``
and copied into ``shapes_noisy``: ambiguous expressions (a same-colour, same-shape twin referred to by the same
words), degenerate and out-of-bounds boxes, near-duplicate images (re-encodes of a training image) and evaluation
leakage (training refs on evaluation images). ``planted`` counts each, by sample.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from curation.demo.fixtures import py2_pickle
from curation.demo.shapes import CATEGORY_IDS, SIZE, Shape, draw, random_scene

CLEAN, NOISY = "shapes", "shapes_noisy"


@dataclass(frozen=True)
class TestbedSpec:
    __test__ = False  # not a pytest class
    """How many images, and the share of training refs (or images) each defect is planted in."""

    train_images: int = 400
    eval_images: int = 150
    wrong_box: float = 0.9  # shapes_noisy only: share of training refs given another object's box (wrong referent)
    inaccurate_box: float = 0.0  # shapes_noisy only: the right object, a box at IoU 0.3-0.6 with its true one
    swapped_expression: float = 0.0  # shapes_noisy only: another object's expression
    ambiguous: float = 0.08  # share of training images given a twin
    degenerate: float = 0.04
    out_of_bounds: float = 0.04
    near_duplicate: float = 0.05  # share of training images re-encoded under a second name
    leakage: float = 0.08  # share of evaluation images that also get training refs
    seed: int = 0


@dataclass
class Testbed:
    __test__ = False
    root: Path
    images: Path
    clean: Path  # refs(unc).p of the clean source
    noisy: Path
    recipes: dict[str, Path]
    planted: dict[str, int] = field(default_factory=dict)

    def sources(self) -> list[tuple[str, Path, Path]]:
        """(kind, annotation file, image root) of both sources, as the demo lists its own."""
        return [("refcoco", self.clean, self.images), ("refcoco", self.noisy, self.noisy_images)]

    @property
    def noisy_images(self) -> Path:
        return self.root / "train2014_noisy"

    @property
    def label_errors(self) -> Path:
        """``[{source, ref_id, kind}]``: every wrong label planted in the noisy source."""
        return self.root / "label_errors.json"


def write_testbed(root: Path, spec: TestbedSpec | None = None) -> Testbed:
    """Write (once) the testbed's images, both sources and its recipes under ``root``."""
    spec = spec or TestbedSpec()
    root = Path(root).resolve()
    done = root / "testbed.json"
    bed = Testbed(
        root,
        root / "train2014",
        root / CLEAN / "refs(unc).p",
        root / NOISY / "refs(unc).p",
        {name: root / "recipes" / f"{name}.yaml" for name in RECIPES},
    )
    write_recipes(bed.recipes)  # cheap, and a recipe added since the testbed was written appears
    if done.exists() and json.loads(done.read_text())["spec"] == asdict(spec):
        bed.planted = json.loads(done.read_text())["planted"]
        return bed
    bed.planted = _write_sources(bed, spec)
    done.write_text(json.dumps({"spec": asdict(spec), "planted": bed.planted}, indent=2))
    return bed


class _Builder:
    """Images, annotations and refs as they are drawn; ids in RefCOCO's style."""

    def __init__(self, images: Path):
        self.dir, self.images, self.anns, self.refs = images, [], [], []
        self.planted = {k: 0 for k in ("ambiguous", "degenerate", "out_of_bounds", "near_duplicate", "leakage")}

    def image(self, scene: list[Shape], seed: int, quality: int = 92) -> int:
        image_id = 600000 + len(self.images)
        name = f"COCO_train2014_{image_id:012d}.jpg"
        self.dir.mkdir(parents=True, exist_ok=True)
        draw(scene, seed).save(self.dir / name, "JPEG", quality=quality)
        self.images.append({"id": image_id, "file_name": name, "width": 112, "height": 112})
        return image_id

    def annotation(self, image_id: int, s: Shape, bbox: list[float] | None = None) -> int:
        x1, y1, x2, y2 = s.box
        ann_id = 7000000 + len(self.anns)
        bbox = bbox or [x1, y1, x2 - x1, y2 - y1]
        self.anns.append(
            {"id": ann_id, "image_id": image_id, "category_id": CATEGORY_IDS[s.shape], "bbox": bbox,
             "area": bbox[2] * bbox[3], "iscrowd": 0, "segmentation": []}
        )  # fmt: skip
        return ann_id

    def ref(self, image_id: int, ann_id: int, s: Shape, split: str, text: str | None = None) -> None:
        ref_id, text = len(self.refs), text or s.expression
        sent = {"tokens": text.split(), "raw": text, "sent_id": ref_id, "sent": text}
        self.refs.append(
            {"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "category_id": CATEGORY_IDS[s.shape],
             "split": split, "sent_ids": [ref_id], "sentences": [sent], "file_name": f"{image_id}_{ann_id}.jpg"}
        )  # fmt: skip


def _write_sources(bed: Testbed, spec: TestbedSpec) -> dict[str, int]:
    rng = random.Random(spec.seed)
    b = _Builder(bed.images)
    for i in range(spec.eval_images):
        scene = random_scene(rng)
        image_id = b.image(scene, seed=rng.randrange(1 << 30))
        split = "val" if i % 2 else "testA"
        for s in scene:
            ann = b.annotation(image_id, s)
            b.ref(image_id, ann, s, split)
            if i < spec.leakage * spec.eval_images:  # the same object, trained on: evaluation leakage
                b.ref(image_id, ann, s, "train", text=f"{s.colour} {s.shape} in the picture")
                b.planted["leakage"] += 1
    for _ in range(spec.train_images):
        twin = rng.random() < spec.ambiguous
        scene = random_scene(rng, twin=twin)
        seed = rng.randrange(1 << 30)
        copies = [b.image(scene, seed)]
        if rng.random() < spec.near_duplicate:
            copies.append(b.image(scene, seed, quality=70))
        for image_id in copies:
            b.planted["near_duplicate"] += len(scene) * (image_id != copies[0])
            b.planted["ambiguous"] += 2 * twin
            for s in scene:
                b.ref(image_id, b.annotation(image_id, s, _bad_box(rng, spec, s, b.planted)), s, "train")
    instances = {
        "images": b.images,
        "annotations": b.anns,
        "categories": [{"id": i, "name": n, "supercategory": "shape"} for n, i in CATEGORY_IDS.items()],
    }
    _write_source(bed.clean, instances, b.refs)
    train = [r for r in b.refs if r["split"] == "train"]
    noisy, boxes, errors = _label_errors(train, b.anns, spec, rng)
    moved = {**instances, "annotations": [{**a, "bbox": boxes.get(a["id"], a["bbox"])} for a in b.anns]}
    _write_source(bed.noisy, *_copied(moved, noisy, bed.images, bed.noisy_images))
    bed.label_errors.write_text(json.dumps(errors))
    kinds = {k: sum(e["kind"] == k for e in errors) for k in ("inaccurate_box", "swapped_expression")}
    wrong = sum(e["kind"] == "wrong_referent" for e in errors)
    return {**b.planted, "wrong_box": wrong, **kinds, "train_refs": len(train), "eval_refs": len(b.refs) - len(train)}


def _bad_box(rng: random.Random, spec: TestbedSpec, s: Shape, planted: dict) -> list[float] | None:
    """A degenerate (zero-width) or out-of-bounds box at the planted rates, else None (the true box)."""
    x1, y1, _, _ = s.box
    r = rng.random()
    if r < spec.degenerate:
        planted["degenerate"] += 1
        return [x1, y1, 0.5, 44.0]
    if r < spec.degenerate + spec.out_of_bounds:
        planted["out_of_bounds"] += 1
        return [x1 + 30.0, y1 + 30.0, 80.0, 80.0]
    return None


def _label_errors(refs: list[dict], anns: list[dict], spec: TestbedSpec, rng: random.Random):
    """The training refs with wrong labels planted at the spec's rates; the moved boxes (ann id -> COCO bbox) of
    the inaccurate ones; and the list of what was planted where."""
    by_image: dict[int, list[dict]] = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    texts: dict[int, set[str]] = {}
    for ref in refs:
        texts.setdefault(ref["image_id"], set()).add(ref["sentences"][0]["raw"])
    box_of = {a["id"]: a["bbox"] for a in anns}
    out, boxes, errors = [], {}, []
    cut = (spec.wrong_box, spec.wrong_box + spec.inaccurate_box,
           spec.wrong_box + spec.inaccurate_box + spec.swapped_expression)  # fmt: skip
    for ref in refs:
        others = [a["id"] for a in by_image[ref["image_id"]] if a["id"] != ref["ann_id"]]
        words = sorted(texts[ref["image_id"]] - {ref["sentences"][0]["raw"]})
        r, kind = rng.random(), None
        if r < cut[0] and others:
            ref, kind = {**ref, "ann_id": rng.choice(others)}, "wrong_referent"
        elif cut[0] <= r < cut[1] and (moved := _inaccurate(box_of[ref["ann_id"]], rng)) is not None:
            boxes[ref["ann_id"]], kind = moved, "inaccurate_box"
        elif cut[1] <= r < cut[2] and words:
            text = rng.choice(words)
            sent = {**ref["sentences"][0], "raw": text, "sent": text, "tokens": text.split()}
            ref, kind = {**ref, "sentences": [sent]}, "swapped_expression"
        if kind:
            errors.append({"source": NOISY, "ref_id": ref["ref_id"], "kind": kind})
        out.append(ref)
    return out, boxes, errors


def _inaccurate(bbox: list[float], rng: random.Random) -> list[float] | None:
    """A COCO box of the same object shifted and scaled to IoU 0.3-0.6 with ``bbox``, inside the image (None for
    a planted broken box, which has no such neighbour)."""
    x, y, w, h = bbox
    for _ in range(1000):
        s = rng.uniform(0.6, 1.4)
        nw, nh = w * s, h * rng.uniform(0.8, 1.2) * s
        nx = min(max(0.0, x + rng.uniform(-0.5, 0.5) * w), SIZE - nw)
        ny = min(max(0.0, y + rng.uniform(-0.5, 0.5) * h), SIZE - nh)
        ix = max(0.0, min(x + w, nx + nw) - max(x, nx))
        iy = max(0.0, min(y + h, ny + nh) - max(y, ny))
        iou = ix * iy / (w * h + nw * nh - ix * iy)
        if 0.3 <= iou <= 0.6 and nx >= 0 and ny >= 0:
            return [round(nx, 1), round(ny, 1), round(nw, 1), round(nh, 1)]
    return None


def _copied(instances: dict, refs: list[dict], images: Path, to: Path) -> tuple[dict, list[dict]]:
    """The images (bytes copied), annotations and refs under new ids."""
    to.mkdir(parents=True, exist_ok=True)
    image_ids, names = {}, {}
    for im in instances["images"]:
        image_ids[im["id"]] = im["id"] + 100000
        names[im["id"]] = f"COCO_train2014_{im['id'] + 100000:012d}.jpg"
        shutil.copyfile(images / im["file_name"], to / names[im["id"]])
    out = {
        **instances,
        "images": [{**im, "id": image_ids[im["id"]], "file_name": names[im["id"]]} for im in instances["images"]],
        "annotations": [
            {**a, "id": a["id"] + 1000000, "image_id": image_ids[a["image_id"]]} for a in instances["annotations"]
        ],
    }
    refs = [{**r, "ann_id": r["ann_id"] + 1000000, "image_id": image_ids[r["image_id"]]} for r in refs]
    return out, refs


def _write_source(path: Path, instances: dict, refs: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "instances.json").write_text(json.dumps(instances))
    path.write_bytes(py2_pickle(refs))


# Arms: every recipe but `noisy` trains on the clean source only; `noisy` on the wrong-box copy of the same refs;
# `noisy-filtered` on that copy less what suspect_label drops (label quality from the start model's rollouts).
RECIPES = {
    "tb-none": ("none", {NOISY: 0}, []),
    "tb-default": ("default", {NOISY: 0}, []),
    "tb-noisy": ("none", {CLEAN: 0}, []),
    "tb-noisy-filtered": ("none", {CLEAN: 0}, [{"rule": "suspect_label"}]),
}


def write_recipes(paths: dict[str, Path]) -> None:
    """The shipped recipes with the testbed's source caps (so each arm sees one of the two sources)."""
    from curation.quality.recipe import RECIPES_DIR

    for name, path in paths.items():
        base, caps, rules = RECIPES[name]
        data = yaml.safe_load((RECIPES_DIR / f"{base}.yaml").read_text())
        data["name"], data["description"] = name, f"{base} on the testbed, source caps {caps}"
        data["selection"]["caps"] = caps
        data["rules"] = (data.get("rules") or []) + rules
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
