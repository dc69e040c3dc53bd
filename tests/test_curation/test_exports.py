"""Exports load and score as the target trainer would, checked against each trainer's documented contract.

VLM-R1 (``grpo_jsonl.py``): ``data_file_paths`` / ``image_folders`` pairs, ``conversations[0].value`` minus
``<image>`` is the problem, ``conversations[1].value`` minus answer tags the solution, ``accu_reward_method``
per line, ``Dataset.from_list`` over all files. EasyR1 (``verl/utils/dataset.py``): ``problem`` rendered
through the format prompt's Jinja with ``content``, split on ``<image>``, ``images`` joined with
``image_dir`` (or decoded from bytes), resized into [262144, 4194304] pixels with truncated sides, then the
processor's own resize; the reward function gets ``{response, response_length, ground_truth}`` only.
"""

import json
import math
import os
import subprocess
from io import BytesIO
from pathlib import Path

import pytest

from curation.exports.easyr1 import to_easyr1
from curation.exports.vlmr1_jsonl import to_vlmr1_jsonl
from curation.quality.recipe import load_recipe
from curation.selection.select import select
from curation.shards.write import write_shards
from helpers import coco_and_refcoco_catalog
from vlmr1 import dialect_vlmr1
from vlmr1.easyr1_reward import compute_score
from vlmr1.prompts import OVD_QUESTION

# A REC line as VLM-R1's released data writes it (integer id, image relative to its folder).
RELEASED = {
    "id": 0,
    "image": "COCO_train2014_000000000001.jpg",
    "conversations": [
        {
            "from": "human",
            "value": "<image>Please provide the bounding box coordinate of the region this sentence "
            "describes: the dog.",
        },
        {"from": "gpt", "value": "[1, 2, 30, 40]"},
    ],
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    db = coco_and_refcoco_catalog(root, 8, 6)
    return write_shards(select(db, load_recipe("none")), db, root / "shards").parent


def _vlmr1_load(files, extra_lines=()):
    """VLM-R1's loader, as documented: one item per line, image path joined with its folder."""
    import datasets

    items = []
    for f in files:
        for line in Path(f.path).read_text().splitlines():
            item = json.loads(line)
            item["image_path"] = [os.path.join(f.image_folder, item.pop("image"))]
            item["problem"] = item["conversations"][0]["value"].replace("<image>", "")
            item["solution"] = (
                item["conversations"][1]["value"].replace("<answer>", "").replace("</answer>", "").strip()
            )
            del item["conversations"]
            item["accu_reward_method"] = item.get("accu_reward_method", "default")
            items.append(item)
    for line in extra_lines:
        items.append({**line, "image_path": ["x"], "problem": "p", "solution": "s", "accu_reward_method": "default"})
        del items[-1]["image"], items[-1]["conversations"]
    return items, datasets.Dataset.from_list(items)


def test_vlmr1_export_is_one_file_per_task_with_integer_ids_and_the_released_question(shards, tmp_path):
    files = to_vlmr1_jsonl(shards, tmp_path / "vlmr1")
    assert {f.task for f in files} == {"rec", "ovd"}
    for f in files:
        lines = [json.loads(x) for x in Path(f.path).read_text().splitlines()]
        assert len(lines) == f.lines > 0
        assert all(type(x["id"]) is int for x in lines)
        assert {x["accu_reward_method"] for x in lines} == {"default" if f.task == "rec" else "odLength"}
        if f.task == "ovd":
            human = lines[0]["conversations"][0]["value"]
            phrases = human.split("objects: [", 1)[1].split("]. Output", 1)[0]
            assert human == OVD_QUESTION.format(categories=phrases) and "<image>" not in human
    items, ds = _vlmr1_load(files, [RELEASED])  # combined with a released line: no type error
    assert len(ds) == sum(f.lines for f in files) + 1 and ds.features["id"].dtype == "int64"
    assert all(os.path.exists(p) for it in items[:-1] for p in it["image_path"])


def test_vlmr1_export_rows_score_as_vlmr1_scores_them(shards, tmp_path):
    """A perfect OVD answer scores 1 with VLM-R1's odLength; a REC answer of the rounded box scores its IoU."""
    files = to_vlmr1_jsonl(shards, tmp_path / "vlmr1")
    items, _ = _vlmr1_load(files)
    for it in items:
        if it["accu_reward_method"] == "odLength":
            response = f"<think>t</think><answer>{it['solution']}</answer>"
            assert dialect_vlmr1.od_reward(response, it["solution"], length_penalty=True) == pytest.approx(1.0)
        else:
            truth = json.loads(it["solution"])
            from PIL import Image

            size = Image.open(it["image_path"][0]).size
            box = [round(v) for v in truth]
            response = f'<think>t</think><answer>{{"bbox_2d": {box}}}</answer>'
            assert dialect_vlmr1.rec_iou(response, truth, size, size) == pytest.approx(
                dialect_vlmr1.pixel_iou(box, truth)
            )


def test_vlmr1_launch_scripts_name_the_task_arguments(shards, tmp_path):
    files = to_vlmr1_jsonl(shards, tmp_path / "vlmr1")
    rec, ovd = ((tmp_path / "vlmr1" / f"train-{t}.sh").read_text() for t in ("rec", "ovd"))
    assert "--task_type rec --is_reward_customized_from_vlm_module True" in rec
    assert "--task_type odLength --reward_method odLength" in ovd
    for script, task in ((rec, "rec"), (ovd, "ovd")):
        assert all(str(f.path) in script for f in files if f.task == task)
        assert "--reward_funcs accuracy format" in script and "src/open_r1/grpo_jsonl.py" in script
    for name in ("train-rec.sh", "train-ovd.sh"):
        assert subprocess.run(["bash", "-n", str(tmp_path / "vlmr1" / name)]).returncode == 0


def test_vlmr1_launch_scripts_check_the_model_path_and_default_to_zero2(shards, tmp_path):
    """VLM-R1 picks its model class by the path (`ValueError: Unsupported model` otherwise) and fails under ZeRO-3
    with --beta > 0 (its issue #338). `torchrun` here is a stand-in that prints its arguments; the real run of these
    scripts on VLM-R1's own trainer is in the closing note of the session that wrote them."""
    to_vlmr1_jsonl(shards, tmp_path / "vlmr1")
    script = tmp_path / "vlmr1" / "train-rec.sh"
    assert "om-ai-lab/VLM-R1@90052f4" in script.read_text() and "#353" in script.read_text()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "torchrun").write_text('#!/usr/bin/env bash\necho "$@"\n')
    (bin_dir / "torchrun").chmod(0o755)
    (tmp_path / "VLM-R1" / "src" / "open-r1-multimodal").mkdir(parents=True)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "VLM_R1": str(tmp_path / "VLM-R1")}

    def launch(model: str, **knobs: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(script)], env=env | {"MODEL": model} | knobs, capture_output=True, text=True
        )

    wrong = launch("/models/tiny-qwen2_5_vl")
    expected = (
        "MODEL=/models/tiny-qwen2_5_vl: VLM-R1 picks the model class from the path, which must contain Qwen2.5-VL;"
        ' link it under such a name: ln -s "/models/tiny-qwen2_5_vl" /some/where/Qwen2.5-VL-mine'
    )
    assert wrong.returncode == 2 and wrong.stdout == "" and wrong.stderr.strip() == expected
    args = launch("/models/Qwen2.5-VL-3B-Instruct").stdout.split()
    assert args[args.index("--deepspeed") + 1].endswith("local_scripts/zero2.json") and "--bf16" in args
    assert args[0] == "--nproc_per_node=8" and args[args.index("--per_device_train_batch_size") + 1] == "8"
    args = launch("/m/Qwen2.5-VL-x", NPROC="1", BATCH="4", ACCUM="1", ZERO="3", EXTRA="--max_steps 2").stdout.split()
    assert args[0] == "--nproc_per_node=1" and args[args.index("--gradient_accumulation_steps") + 1] == "1"
    assert args[args.index("--deepspeed") + 1].endswith("zero3.json") and args[-4:-2] == ["--max_steps", "2"]


def test_exports_shorter_than_one_vlmr1_step_are_named():
    """VLM-R1's sampler takes processes x batch x accumulation / generations distinct prompts per step and drops an
    incomplete chunk (its RepeatRandomSampler): with the scripts' defaults and 4 generations, 32."""
    from curation.exports.vlmr1_jsonl import JsonlFile, prompts_per_step, short_files

    assert prompts_per_step(4) == 32 and prompts_per_step(8) == 16 and prompts_per_step(4, 1, 4, 1) == 1
    manifest = {"scorer": {"sampling": {"n": 4}}}
    files = [
        JsonlFile(Path("a"), "i", "rec", 20),
        JsonlFile(Path("b"), "i", "rec", 12),
        JsonlFile(Path("c"), "i", "ovd", 31),
    ]
    (line,) = short_files(files, manifest)
    assert line.startswith("ovd: 31 lines, but with train-ovd.sh's defaults (NPROC=8 x BATCH=8 x ACCUM=2 / 4 "
                           "generations) VLM-R1's sampler takes 32 distinct prompts per step")  # fmt: skip


def _easyr1_resize(w, h, lo=262144, hi=4194304):
    """EasyR1's process_image, from its documented behaviour."""
    if w * h > hi:
        f = math.sqrt(hi / (w * h))
        w, h = int(w * f), int(h * f)
    if w * h < lo:
        f = math.sqrt(lo / (w * h))
        w, h = int(w * f), int(h * f)
    return w, h


def _easyr1_rows(export, embed: bool):
    """RLHFDataset with EasyR1's example config: (messages, PIL images, ground truth) per row."""
    import datasets
    from jinja2 import Template
    from PIL import Image

    ds = datasets.load_dataset("parquet", data_files=str(export.parquet), split="train")
    template = Template(Path(export.format_prompt).read_text().strip())
    out = []
    for row in ds:
        prompt = template.render(content=row["problem"])
        pieces = prompt.split("<image>")
        images = []
        for img in row["images"]:
            if embed:
                images.append(Image.open(BytesIO(img["bytes"])))
            else:
                images.append(Image.open(os.path.join(export.image_dir, img)))
        assert len(pieces) - 1 == len(images) == 1 and pieces[0] == ""
        out.append((pieces[1], [im.resize(_easyr1_resize(*im.size)) for im in images], row["answer"]))
    return out


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("embed", [False, True])
def test_easyr1_export_loads_and_scores_in_the_frame_the_model_sees(shards, tmp_path, embed):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    export = to_easyr1(shards, tmp_path / "easyr1", embed=embed)
    rows = _easyr1_rows(export, embed)
    assert len(rows) > 0 and {json.loads(a)["task"] for _, _, a in rows} == {"rec", "ovd"}
    for text, (image,), answer in rows:
        truth = json.loads(answer)
        assert ("detect the following objects" in text) == (truth["task"] == "ovd")
        assert "<think> </think>" in text  # the reasoning instruction the labels were scored with
        h2, w2 = smart_resize(
            image.height, image.width, 28, truth["family"]["min_pixels"], truth["family"]["max_pixels"]
        )
        sx, sy = w2 / truth["width"], h2 / truth["height"]
        boxes = [t["bbox"] for t in truth["solution"]]
        seen = [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in boxes]
        if truth["task"] == "rec":
            perfect = f'<think>t</think><answer>{{"bbox_2d": {seen[0]}}}</answer>'
            shifted_seen = [seen[0][0] + 7, seen[0][1], seen[0][2] + 7, seen[0][3]]
            shifted = f'<think>t</think><answer>{{"bbox_2d": {shifted_seen}}}</answer>'
            b = boxes[0]
            expected = _iou(b, [b[0] + 7 / sx, b[1], b[2] + 7 / sx, b[3]])
            [p, s] = compute_score(
                [{"response": r, "response_length": 1, "ground_truth": answer} for r in (perfect, shifted)]
            )
            assert p["accuracy"] == pytest.approx(1.0, abs=1e-9) and s["accuracy"] == pytest.approx(expected, abs=1e-9)
            assert 0 < expected < 1 and p["format"] == 1.0
        else:
            items = [{"bbox_2d": s, "label": t["label"]} for s, t in zip(seen, truth["solution"])]
            body = "```json\n" + json.dumps(items) + "\n```" if items else "None"
            [p] = compute_score(
                [
                    {
                        "response": f"<think>t</think><answer>{body}</answer>",
                        "response_length": 1,
                        "ground_truth": answer,
                    }
                ]
            )
            assert p["accuracy"] == pytest.approx(1.0, abs=1e-9)


def test_a_released_vlmr1_ovd_line_exports_with_its_question_unchanged(tmp_path):
    """VLM-R1 issue #246's OVD example: ingested, sharded and exported, its question text is byte-identical."""
    from curation.demo.fixtures import write_jpeg
    from curation.ingest import ingest
    from curation.ingest.images import ImageCheck
    from curation.quality.apply import evaluate_recipe

    phrases = "['railings being crossed by horses', 'a horse running or jumping', \"equestrian rider's helmet\"]"
    human = OVD_QUESTION.format(categories=phrases[1:-1])
    gpt = '```json\n[{"bbox_2d": [3, 218, 799, 533], "label": "railings being crossed by horses"}]\n```'
    line = {"id": 1, "image": "equestrian/006.jpg", "conversations": [{"from": "human", "value": human}]}
    line["conversations"].append({"from": "gpt", "value": gpt})
    write_jpeg(tmp_path / "images" / "equestrian" / "006.jpg", 800, 534, 0)
    (tmp_path / "released.jsonl").write_text(json.dumps(line) + "\n")
    db = tmp_path / "c.duckdb"
    ingest("jsonl", db, tmp_path / "released.jsonl", images=ImageCheck([tmp_path / "images"]))
    evaluate_recipe(db, load_recipe("none"))
    shards = write_shards(select(db, load_recipe("none")), db, tmp_path / "shards").parent
    [f] = to_vlmr1_jsonl(shards, tmp_path / "export")
    [out] = [json.loads(x) for x in Path(f.path).read_text().splitlines()]
    assert out["conversations"][0]["value"] == human and out["conversations"][1]["value"] == gpt
    assert out["image"] == "equestrian/006.jpg" and f.image_folder == str((tmp_path / "images").resolve())


def test_integer_ids_that_collide_are_refused():
    from curation.exports import ExportRow
    from curation.exports.vlmr1_jsonl import _check_ids, integer_id

    a, b = "0123456789abcde" + "000000000", "0123456789abcde" + "ffffffffff"[:9]
    assert integer_id(a) == integer_id(b) == 0x0123456789ABCDE
    with pytest.raises(ValueError, match=f"integer id {integer_id(a)} of samples {a} and {b} collides"):
        _check_ids([ExportRow({"sample_id": s}, "x.jpg", 0) for s in (a, b)])


def test_relative_image_roots_are_stored_absolute(tmp_path, monkeypatch):
    """Shards and exports must not depend on the working directory the catalog was built from."""
    from curation.demo.fixtures import make_coco
    from curation.ingest import ingest
    from curation.ingest.images import ImageCheck
    from curation.quality.apply import evaluate_recipe

    coco = make_coco(tmp_path / "coco", n_images=3)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "c.duckdb"
    ingest("coco", db, coco, images=ImageCheck([Path("coco")]))
    evaluate_recipe(db, load_recipe("none"))
    manifest = json.loads(write_shards(select(db, load_recipe("none")), db, tmp_path / "s").read_text())
    assert manifest["image_roots"] == [str(tmp_path / "coco")]
    monkeypatch.chdir("/")
    files = to_vlmr1_jsonl(tmp_path / "s", tmp_path / "export")
    assert all(
        os.path.exists(os.path.join(f.image_folder, json.loads(line)["image"]))
        for f in files
        for line in Path(f.path).read_text().splitlines()
    )
