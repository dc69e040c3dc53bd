"""Tiny, format-exact datasets with real JPEG files, for tests and ``make demo``.

COCO instances json, the refer layout (Python 2 pickles + instances.json),
D3 and VLM-R1 jsonl. Each defect the ingest must survive is placed at a
known record, and the ``*_DEFECTS`` lists say where, so tests can name
exactly what must be rejected and what must not.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

from PIL import Image, ImageDraw

COCO_CATEGORIES = [(1, "person"), (2, "bicycle"), (3, "car"), (17, "cat"), (18, "dog"), (62, "chair")]

# (section, record id, reason prefix) of the deliberate defects in make_coco().
DEFECTS = [
    ("images", "9001", "width/height must be positive integers"),
    ("annotations", "7001", "bbox must be 4 finite numbers"),  # NaN in the box
    ("annotations", "7002", "unknown image id"),
    ("annotations", "7003", "bbox has no area"),  # negative width
    ("annotations", "7004", "bbox must be 4 finite numbers"),  # a string where a number goes
    ("annotations", "7005", "unknown category id"),
]


# Records that ingest must keep but the quality rules (issue 4) must catch: kind -> ids.
# COCO: annotation ids, and image ids whose files duplicate another image's. RefCOCO: (ref_id, sent_id).
QUALITY_CASES = {
    "coco_degenerate_box": [7101],  # w = 0.5 px
    "coco_out_of_bounds": [7102],  # 40 px past the right edge
    "coco_tiny_box": [7103],  # 2 x 2 px
    "coco_huge_box": [7104],  # the whole image
    "coco_extreme_aspect": [7105],  # 150 x 1.5 px
    "coco_crowd": [7100],  # the one iscrowd=1 annotation
    "coco_exact_duplicate_image": [10],  # same bytes as image 2
    "coco_near_duplicate_image": [11],  # image 3 re-encoded at quality 60
    "refcoco_non_ascii": [(950, 9500)],
    "refcoco_one_token": [(951, 9510)],
    "refcoco_too_long": [(952, 9520)],
    "refcoco_non_unique": [(953, 9530), (954, 9540)],  # one expression, two different objects, one image
}


def write_jpeg(path: Path, width: int, height: int, seed: int | str) -> None:
    """A small real JPEG; distinct seeds give distinct pictures (fixtures prefix theirs, so they never collide)."""
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.rectangle(
            [x, y, x + rng.randrange(5, 60), y + rng.randrange(5, 60)],
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=85)


def make_coco(root: Path, n_images: int = 12, split: str = "train2017", seed: int = 0) -> Path:
    """Write ``root/annotations/instances_{split}.json`` and ``root/{split}/*.jpg``; return the json path."""
    from PIL import Image

    rng = random.Random(seed)
    images, anns = [], []
    ann_id = 1
    dims = {}
    for i in range(1, n_images + 1):
        w, h = rng.choice([(320, 240), (240, 320), (400, 300)])
        name = f"{split}/{i:012d}.jpg"
        if i == 10 and n_images >= 11:  # exact duplicate of image 2 (QUALITY_CASES)
            (w, h), source = dims[2], root / f"{split}/{2:012d}.jpg"
            (root / name).write_bytes(source.read_bytes())
        elif i == 11 and n_images >= 11:  # near duplicate of image 3
            (w, h) = dims[3]
            Image.open(root / f"{split}/{3:012d}.jpg").save(root / name, "JPEG", quality=60)
        else:
            write_jpeg(root / name, w, h, f"coco:{seed}:{split}:{i}")
        dims[i] = (w, h)
        images.append(
            {"id": i, "file_name": name, "width": w, "height": h, "license": 1, "date_captured": "2013-11-14 11:18:45"}
        )
        for _ in range(0 if i == n_images else rng.randrange(1, 4)):  # the last image has no boxes
            cat = rng.choice(COCO_CATEGORIES)[0]
            bw, bh = rng.randrange(10, w // 2), rng.randrange(10, h // 2)
            x, y = rng.randrange(0, w - bw), rng.randrange(0, h - bh)
            anns.append(
                {
                    "id": ann_id,
                    "image_id": i,
                    "category_id": cat,
                    "bbox": [x + 0.5, y + 0.25, bw, bh],
                    "area": bw * bh * 0.8,
                    "iscrowd": 0,
                    "segmentation": [[x, y, x + bw, y, x + bw, y + bh]],
                }
            )
            ann_id += 1
    anns.append(
        {
            "id": 7100,
            "image_id": 1,
            "category_id": 1,
            "bbox": [0, 0, 50, 60],
            "area": 2000,
            "iscrowd": 1,
            "segmentation": {"counts": [0, 10], "size": [240, 320]},
        }
    )
    images.append({"id": 9001, "file_name": f"{split}/broken.jpg", "width": -5, "height": 100})
    if n_images >= 6:  # valid records with quality problems (QUALITY_CASES)
        (w4, _), (w5, h5) = dims[4], dims[5]
        for ann in (
            {"id": 7101, "image_id": 4, "bbox": [20, 20, 0.5, 30]},
            {"id": 7102, "image_id": 4, "bbox": [w4 - 20, 10, 60, 40]},
            {"id": 7103, "image_id": 5, "bbox": [30, 30, 2, 2]},
            {"id": 7104, "image_id": 5, "bbox": [0, 0, w5, h5]},
            {"id": 7105, "image_id": 6, "bbox": [10, 100, 150, 1.5]},
        ):
            x, y, bw, bh = ann["bbox"]
            anns.append(
                {
                    **ann,
                    "category_id": 3,
                    "area": bw * bh,
                    "iscrowd": 0,
                    "segmentation": [[x, y, x + bw, y, x + bw, y + bh]],
                }
            )
    anns += [
        {"id": 7001, "image_id": 1, "category_id": 1, "bbox": [1, 2, float("nan"), 5], "area": 1, "iscrowd": 0},
        {"id": 7002, "image_id": 424242, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0},
        {"id": 7003, "image_id": 2, "category_id": 3, "bbox": [10, 10, -4, 5], "area": 20, "iscrowd": 0},
        {"id": 7004, "image_id": 2, "category_id": 3, "bbox": [10, "10", 4, 5], "area": 20, "iscrowd": 0},
        {"id": 7005, "image_id": 3, "category_id": 999, "bbox": [10, 10, 4, 5], "area": 20, "iscrowd": 0},
    ]
    data = {
        "info": {"description": "vlmr1-curate fixture", "version": "1.0", "year": 2026},
        "licenses": [{"id": 1, "name": "fixture", "url": ""}],
        "images": images,
        "annotations": anns,
        "categories": [{"id": cid, "name": name, "supercategory": "thing"} for cid, name in COCO_CATEGORIES],
    }
    out = root / "annotations" / f"instances_{split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, allow_nan=True))
    return out


def make_coco_scale(
    path: Path, n_images: int = 118_287, n_annotations: int = 860_001, n_categories: int = 80, seed: int = 0
) -> Path:
    """A synthetic COCO instances file at train2017 scale, for benchmarks (not tests).

    Field values look like the real file: COCO's image sizes and file names,
    float boxes inside the image, polygon segmentations of realistic length
    (the bulk of the real file's 448 MB), about 1% crowd annotations with RLE
    counts, and sparse category ids (1..90 with gaps, like COCO's 80).
    Written in chunks, so memory stays small.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    cat_ids = sorted(rng.choice(np.arange(1, 91), size=n_categories, replace=False).tolist())
    sizes = np.array([(640, 480), (480, 640), (640, 427), (427, 640), (640, 425), (500, 375), (640, 512)])
    pick = rng.integers(0, len(sizes), n_images)
    widths, heights = sizes[pick, 0], sizes[pick, 1]
    image_ids = np.sort(rng.choice(np.arange(1, 600_000), size=n_images, replace=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fh.write(
            '{"info": {"description": "synthetic COCO 2017 scale", "version": "1.0", "year": 2017}, '
            '"licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1, "name": '
            '"Attribution-NonCommercial-ShareAlike License"}], '
        )
        fh.write('"images": [')
        for i in range(n_images):
            iid = int(image_ids[i])
            fh.write(
                ("," if i else "") + f'{{"license": {1 + iid % 8}, "file_name": "{iid:012d}.jpg", '
                f'"coco_url": "http://images.cocodataset.org/train2017/{iid:012d}.jpg", "height": {heights[i]}, '
                f'"width": {widths[i]}, '
                '"date_captured": "2013-11-14 11:18:45", "flickr_url": '
                f'"http://farm4.staticflickr.com/1/{iid}_abc_z.jpg", "id": {iid}}}'
            )
        fh.write('], "annotations": [')
        chunk = 50_000
        for start in range(0, n_annotations, chunk):
            n = min(chunk, n_annotations - start)
            img = rng.integers(0, n_images, n)
            w, h = widths[img], heights[img]
            bw = np.round(w * rng.beta(1.2, 4, n) + 1, 2)
            bh = np.round(h * rng.beta(1.2, 4, n) + 1, 2)
            bw = np.minimum(bw, w - 1)
            bh = np.minimum(bh, h - 1)
            x = np.round(rng.uniform(0, 1, n) * (w - bw), 2)
            y = np.round(rng.uniform(0, 1, n) * (h - bh), 2)
            crowd = rng.uniform(0, 1, n) < 0.009
            n_pts = rng.integers(4, 40, n)
            cats = rng.choice(cat_ids, n)
            parts = []
            for j in range(n):
                if crowd[j]:
                    counts = rng.integers(0, 400, 60).tolist()
                    seg = f'{{"counts": {counts}, "size": [{h[j]}, {w[j]}]}}'
                else:
                    k = int(n_pts[j])
                    px = np.round(x[j] + rng.uniform(0, bw[j], k), 2)
                    py = np.round(y[j] + rng.uniform(0, bh[j], k), 2)
                    seg = "[[" + ", ".join(f"{a}, {b}" for a, b in zip(px.tolist(), py.tolist())) + "]]"
                parts.append(
                    f'{{"segmentation": {seg}, "area": {round(float(bw[j] * bh[j]) * 0.6, 4)}, "iscrowd": '
                    f"{int(crowd[j])}, "
                    f'"image_id": {int(image_ids[img[j]])}, "bbox": [{x[j]}, {y[j]}, {bw[j]}, {bh[j]}], '
                    f'"category_id": {int(cats[j])}, "id": {start + j + 1}}}'
                )
            fh.write(("," if start else "") + ",".join(parts))
        names = [f"category {c}" for c in cat_ids]
        fh.write(
            '], "categories": ['
            + ", ".join(f'{{"supercategory": "thing", "id": {c}, "name": "{n}"}}' for c, n in zip(cat_ids, names))
            + "]}"
        )
    return path


def py2_pickle(obj) -> bytes:
    """Protocol-2 pickle of plain data as Python 2 wrote it: ``str`` as byte strings (BINSTRING), no globals.

    Python 3's pickler cannot write this (its bytes go through a
    ``_codecs.encode`` call), and the refer pickles are Python 2 files.
    """
    out = bytearray(b"\x80\x02")

    def emit(v) -> None:
        if v is None:
            out.extend(b"N")
        elif v is True or v is False:
            out.extend(b"\x88" if v else b"\x89")
        elif isinstance(v, int):
            if -(2**31) <= v < 2**31:
                out.extend(b"J" + struct.pack("<i", v))
            else:
                raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
                out.extend(b"\x8a" + bytes([len(raw)]) + raw)
        elif isinstance(v, float):
            out.extend(b"G" + struct.pack(">d", v))
        elif isinstance(v, str):
            raw = v.encode("utf-8")
            out.extend(b"T" + struct.pack("<i", len(raw)) + raw)
        elif isinstance(v, (list, tuple)):
            out.extend(b"]" if isinstance(v, list) else b"(")
            if isinstance(v, list):
                out.extend(b"(")
            for item in v:
                emit(item)
            out.extend(b"e" if isinstance(v, list) else b"t")
        elif isinstance(v, dict):
            out.extend(b"}(")
            for k, item in v.items():
                emit(k)
                emit(item)
            out.extend(b"u")
        else:
            raise TypeError(f"not plain data: {type(v).__name__}")

    emit(obj)
    out.extend(b".")
    return bytes(out)


# (section, record id, reason prefix) of the deliberate defects in make_refcoco().
REFCOCO_DEFECTS = [
    ("instances.json/annotations", "8001", "bbox has no area"),
    ("refs", "900/9000", "unknown annotation id"),  # its ann is not in instances.json
    ("refs", "901/9010", "unknown annotation id"),  # its ann was rejected there (ann 8001)
    ("refs", "902/9021", "sentence 1 needs an integer sent_id and non-empty text"),
    ("refs", "903", "ref has no sentences"),
    ("refs", "904/9040", "image id mismatch"),
]

_EXPRESSIONS = [
    "man on the left",
    "woman in red",
    "the dog near the bench",
    "car behind the tree",
    "left most chair",
    "person holding an umbrella",
    "the small cat",
    "blue car",
    "guy in black shirt",
    "bike on the right",
]


def make_refcoco(
    root: Path,
    dataset: str = "refcoco",
    split_by: str = "unc",
    n_images: int = 8,
    seed: int = 0,
    images_dir: Path | None = None,
) -> Path:
    """Write ``root/<dataset>/refs(<split_by>).p`` + ``instances.json`` and train2014 JPEGs; return the pickle path.

    Images go to ``images_dir`` (default ``root/train2014``) as
    ``COCO_train2014_<id>.jpg``. Each ref has 1-3 sentences (raw text in
    mixed case with extra spaces, ``sent`` normalised), splits drawn from
    train/val/testA/testB (unc) or train/val/test (umd/google).
    """
    rng = random.Random(seed)
    images_dir = images_dir or root / "train2014"
    splits = ["train", "train", "val", "testA", "testB"] if split_by == "unc" else ["train", "train", "val", "test"]
    images, anns, refs = [], [], []
    ann_id, ref_id, sent_id = 100, 0, 0
    for i in range(1, n_images + 1):
        image_id = 500000 + i
        w, h = rng.choice([(320, 240), (240, 320), (400, 300)])
        name = f"COCO_train2014_{image_id:012d}.jpg"
        write_jpeg(images_dir / name, w, h, f"refcoco:{seed}:{image_id}")
        images.append(
            {
                "license": 1,
                "file_name": name,
                "coco_url": "",
                "height": h,
                "width": w,
                "date_captured": "",
                "flickr_url": "",
                "id": image_id,
            }
        )
        image_split = rng.choice(splits)  # RefCOCO splits by image: no image is in two splits
        unused = rng.sample(_EXPRESSIONS, len(_EXPRESSIONS))
        for _ in range(rng.randrange(1, 4)):
            bw, bh = rng.randrange(10, w // 2), rng.randrange(10, h // 2)
            x, y = rng.randrange(0, w - bw), rng.randrange(0, h - bh)
            cat = rng.choice(COCO_CATEGORIES)[0]
            anns.append(
                {
                    "segmentation": [[x, y, x + bw, y, x + bw, y + bh]],
                    "area": bw * bh * 0.7,
                    "iscrowd": 0,
                    "image_id": image_id,
                    "bbox": [x + 0.5, y + 0.5, bw, bh],
                    "category_id": cat,
                    "id": ann_id,
                }
            )
            sentences = []
            for _ in range(rng.randrange(1, 4)):
                text = unused.pop()  # unique within the image: non-unique references are planted on purpose only
                raw = "  ".join(w.upper() if rng.random() < 0.3 else w for w in text.split())
                sentences.append({"tokens": text.split(), "raw": raw, "sent_id": sent_id, "sent": text})
                sent_id += 1
            refs.append(
                {
                    "sent_ids": [s["sent_id"] for s in sentences],
                    "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
                    "ann_id": ann_id,
                    "ref_id": ref_id,
                    "image_id": image_id,
                    "split": image_split,
                    "sentences": sentences,
                    "category_id": cat,
                }
            )
            ann_id += 1
            ref_id += 1
    first = images[0]["id"]
    first_split = next(r["split"] for r in refs if r["image_id"] == first)
    anns.append(
        {
            "segmentation": [],
            "area": 0,
            "iscrowd": 0,
            "image_id": first,
            "bbox": [5, 5, 0, 7],
            "category_id": 1,
            "id": 8001,
        }
    )
    sent = lambda k, text: {"tokens": text.split(), "raw": text, "sent_id": k, "sent": text}  # noqa: E731
    anns.append(
        {
            "segmentation": [],
            "area": 400,
            "iscrowd": 0,
            "image_id": first,
            "bbox": [60, 60, 20, 20],
            "category_id": 1,
            "id": 8002,
        }
    )
    long_text = " ".join(["the person standing next to the tall lamp"] * 5)
    for ref, ann, sid, text in (
        (950, 100, 9500, "le chien à gauche"),
        (951, 100, 9510, "dog"),
        (952, 100, 9520, long_text),
        (953, 100, 9530, "the man"),
        (954, 8002, 9540, "the man"),
    ):
        refs.append(
            {
                "ann_id": ann,
                "ref_id": ref,
                "image_id": first,
                "split": first_split,
                "sentences": [sent(sid, text)],
                "category_id": 1,
            }
        )
    refs += [
        {
            "ann_id": 424242,
            "ref_id": 900,
            "image_id": first,
            "split": first_split,
            "sentences": [sent(9000, "ghost")],
            "category_id": 1,
        },
        {
            "ann_id": 8001,
            "ref_id": 901,
            "image_id": first,
            "split": first_split,
            "sentences": [sent(9010, "flat box")],
            "category_id": 1,
        },
        {
            "ann_id": 100,
            "ref_id": 902,
            "image_id": first,
            "split": first_split,
            "sentences": [sent(9020, "kept sentence"), sent(9021, "   ")],
            "category_id": 1,
        },
        {"ann_id": 100, "ref_id": 903, "image_id": first, "split": first_split, "sentences": [], "category_id": 1},
        {
            "ann_id": 100,
            "ref_id": 904,
            "image_id": images[1]["id"],
            "split": first_split,
            "sentences": [sent(9040, "wrong image")],
            "category_id": 1,
        },
    ]
    folder = root / dataset
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "instances.json").write_text(
        json.dumps(
            {
                "info": {"description": f"{dataset} fixture"},
                "licenses": [],
                "images": images,
                "annotations": anns,
                "categories": [{"supercategory": "thing", "id": cid, "name": name} for cid, name in COCO_CATEGORIES],
            }
        )
    )
    out = folder / f"refs({split_by}).p"
    out.write_bytes(py2_pickle(refs))
    return out


# (section, record id, reason prefix) of the deliberate defects in make_d3().
D3_DEFECTS = [
    ("annotations", "6001", "unknown category id"),
    ("groups", "2/image 777", "unknown image id"),
    ("groups", "2/sent 999", "unknown sentence id"),
]

_D3_GROUPS = {
    1: (
        "dogs in a park",
        [
            (1, "a dog not held by a leash", True),
            (2, "a dog catching a frisbee", False),
            (3, "a person walking a dog", False),
        ],
    ),
    2: ("kitchen", [(4, "a cup that is not on the table", True), (5, "a person cutting vegetables", False)]),
}


def make_d3(root: Path, images_per_group: int = 3, seed: int = 0) -> Path:
    """Write the d-cube layout under ``root`` (d3_images/, d3_json/d3_full_annotations.json, d3_pkl/); return the json
    path.

    Each image is annotated for some of its group's descriptions and not
    others, so the intra-group protocol yields both positive and no-target
    pairs; one description per group is an absence description.
    """
    import pickle

    rng = random.Random(seed)
    images, anns, groups, sentences = [], [], {}, {}
    image_id, ann_id = 1, 1
    for gid, (gname, sents) in _D3_GROUPS.items():
        img_ids = []
        for _ in range(images_per_group):
            w, h = rng.choice([(320, 240), (400, 300)])
            name = f"d3_{image_id:06d}.jpg"
            write_jpeg(root / "d3_images" / name, w, h, f"d3:{seed}:{image_id}")
            images.append(
                {"id": image_id, "file_name": name, "height": h, "width": w, "license": "cc", "flickr_url": ""}
            )
            img_ids.append(image_id)
            for sid, _, _ in sents:
                for _ in range(rng.choice([0, 0, 1, 2])):
                    bw, bh = rng.randrange(10, w // 2), rng.randrange(10, h // 2)
                    x, y = rng.randrange(0, w - bw), rng.randrange(0, h - bh)
                    anns.append(
                        {
                            "id": ann_id,
                            "image_id": image_id,
                            "category_id": sid,
                            "bbox": [x, y, bw, bh],
                            "area": bw * bh,
                            "iscrowd": 0,
                            "segmentation": {"size": [h, w], "counts": "PQ1"},
                        }
                    )
                    ann_id += 1
            image_id += 1
        groups[gid] = {
            "id": gid,
            "pos_sent_id": [s for s, _, _ in sents],
            "inner_sent_id": [s for s, _, _ in sents],
            "outer_sent_id": [],
            "img_id": img_ids,
            "scene": [gname],
            "group_name": gname,
            "group_name_zh": "",
        }
        for sid, text, negative in sents:
            sentences[sid] = {
                "id": sid,
                "anno_id": [],
                "group_id": [gid],
                "is_negative": negative,
                "raw_sent": text,
                "raw_sent_zh": "",
            }
    groups[2]["img_id"].append(777)
    groups[2]["inner_sent_id"].append(999)
    anns.append({"id": 6001, "image_id": 1, "category_id": 4242, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0})
    categories = [
        {"id": sid, "name": text, "supercategory": gname}
        for gname, sents in _D3_GROUPS.values()
        for sid, text, _ in sents
    ]
    out = root / "d3_json" / "d3_full_annotations.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    (root / "d3_pkl").mkdir(exist_ok=True)
    (root / "d3_pkl" / "sentences.pkl").write_bytes(pickle.dumps(sentences, protocol=4))
    (root / "d3_pkl" / "groups.pkl").write_bytes(pickle.dumps(groups, protocol=4))
    return out


# (record id, reason prefix) of the deliberate defects in make_vlmr1_jsonl(); None = the line that is not JSON.
JSONL_DEFECTS = [
    (None, "line is not JSON"),
    ("6", "answer unreadable"),  # three numbers
    ("7", "multi-image record"),
    ("8", "image missing"),
    ("9", "image unreadable"),  # bytes that are no image
    ("10", "image size mismatch"),  # the line says 999x999
    ("11", "image too large"),  # a 90-megapixel PNG of 11 kB: decompression bomb
    ("12", "answer box invalid"),  # NaN in the box
    ("13", "answer box invalid"),  # a detection without a label
    ("0", "duplicate sample id"),  # line 14 repeats id 0
]


def make_vlmr1_jsonl(root: Path, seed: int = 0) -> Path:
    """Write ``root/vlmr1_rec_ovd.jsonl`` in VLM-R1's format, and its images under ``root/images``; return the jsonl
    path."""
    from PIL import Image

    from vlmr1.prompts import OVD_QUESTION, REC_QUESTION

    img = root / "images"
    sizes = {"a.jpg": (320, 240), "b.jpg": (240, 320), "c.jpg": (400, 300), "d.jpg": (320, 240), "e.jpg": (320, 240)}
    for k, (name, (w, h)) in enumerate(sizes.items()):
        write_jpeg(img / name, w, h, f"jsonl:{seed}:{k}")
    (img / "not_an_image.jpg").write_bytes(b"this is not a JPEG at all\n" * 20)
    Image.new("1", (10000, 9000)).save(img / "bomb.png")

    def rec(i, image, expr, box, **extra):
        return {
            "id": i,
            "image": image,
            "conversations": [
                {"from": "human", "value": "<image>" + REC_QUESTION.format(expression=expr)},
                {"from": "gpt", "value": json.dumps(box)},
            ],
            **extra,
        }

    def ovd(i, image, cats, answer):
        q = OVD_QUESTION.format(categories=", ".join(f"'{c}'" for c in cats))
        return {
            "id": i,
            "image": image,
            "conversations": [{"from": "human", "value": "<image>" + q}, {"from": "gpt", "value": answer}],
        }

    dets = [{"bbox_2d": [10, 20, 110, 140], "label": "dog"}, {"bbox_2d": [150.5, 30, 300, 200], "label": "person"}]
    lines = [
        rec(0, "a.jpg", "the man on the left", [10, 20, 100, 120]),
        rec(1, ["b.jpg"], "red car", [5.5, 6.5, 200, 300]),
        ovd(2, "c.jpg", ["dog", "person", "cat"], "```json\n" + json.dumps(dets) + "\n```"),
        ovd(3, "d.jpg", ["giraffe", "boat"], "None"),
        rec(4, "e.jpg", "the cup", [1, 1, 50, 60], width=320, height=240),
        '{"id": 5, "image": "a.jpg", "conversations": [',
        rec(6, "a.jpg", "three numbers", [1, 2, 3]),
        rec(7, ["a.jpg", "b.jpg"], "two images", [1, 2, 3, 4]),
        rec(8, "missing.jpg", "nothing there", [1, 2, 3, 4]),
        rec(9, "not_an_image.jpg", "garbage bytes", [1, 2, 3, 4]),
        rec(10, "a.jpg", "wrong size", [1, 2, 3, 4], width=999, height=999),
        rec(11, "bomb.png", "bomb", [1, 2, 3, 4]),
        {
            "id": 12,
            "image": "a.jpg",
            "conversations": [
                {"from": "human", "value": "<image>" + REC_QUESTION.format(expression="nan")},
                {"from": "gpt", "value": "[1, 2, NaN, 4]"},
            ],
        },
        ovd(13, "c.jpg", ["dog"], json.dumps([{"bbox_2d": [1, 2, 30, 40]}])),
        rec(0, "b.jpg", "same id as line 0", [1, 2, 3, 4]),
    ]
    out = root / "vlmr1_rec_ovd.jsonl"
    out.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return out
