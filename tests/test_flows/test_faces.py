"""Every stage through both faces, the ``vlmr1`` CLI and its Prefect task, on the same inputs: the same outputs and
the same report. The faces used to assemble each stage by hand and drifted (the flow evaluated with a hard-coded
48-token limit and always on hf); now both call ``flows.stages``, and this test keeps it so.

The evaluation is served by a chat-completions stub that answers the ground truth in the model's frame, cut at the
request's ``max_tokens`` with the checkpoint's tokenizer, as a real server cuts it: an OVD answer over 48 tokens
scores mAP 1 only when it is read whole.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from curation.demo.fixtures import make_coco, make_refcoco
from curation.demo.inputs import write_train_config
from curation.demo.tiny_model import build_tiny_vlm
from helpers import ChatServer, start_prefect_server, stop_in_order, vlmr1_in_process

pytestmark = pytest.mark.slow
VOLATILE = {"share outside generate", "manifest_sha256"}  # wall-clock shares; a hash over the catalog's own path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    model = build_tiny_vlm(root / "tiny", "qwen2_5_vl")
    files = {
        "sources": [
            ("coco", make_coco(root / "coco", n_images=6), root / "coco"),
            ("coco", make_coco(root / "coco-val", n_images=3, split="val2017", seed=1), root / "coco-val"),
            ("refcoco", make_refcoco(root / "refer", n_images=4), root / "refer" / "train2014"),
        ],
        "model": model,
        "train": write_train_config(root / "train.yaml", model, max_steps=1),
    }
    # answers as long as the OVD ones; no DeepSpeed here (test_training runs its engine): both faces train alike
    train = yaml.safe_load(files["train"].read_text()) | {"max_completion_length": 160, "deepspeed": None}
    files["train"].write_text(yaml.safe_dump(train))
    for name, k in (("scorer", 2), ("scorer-current", 3)):
        files[name] = root / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump({"engine": {"model": str(model), "batch_size": 8},
                                                "sampling": {"n": k, "max_new_tokens": 8, "seed": 1}}))  # fmt: skip
    from transformers import AutoTokenizer

    server = ChatServer({}, tokenizer=AutoTokenizer.from_pretrained(model), choose=_answer_for)
    yield root, files, server
    server.close()


def _pixels(image) -> str:
    return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


def _answer_for(body: dict) -> list[str] | None:
    """The scripted answer for a request: its image (as the engine resized and sent it) and its question."""
    import base64
    import io

    from PIL import Image

    content = body["messages"][0]["content"]
    url = next(c["image_url"]["url"] for c in content if c["type"] == "image_url")
    text = next(c["text"] for c in content if c["type"] == "text")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    return next((v for (pixels, problem), v in ANSWERS.items() if pixels == _pixels(image) and problem in text), None)


ANSWERS: dict[tuple[str, str], list[str]] = {}  # (resized image's pixels, question) -> the answer
AMBIGUOUS: set[str] = set()  # samples whose image and question another sample shares: no answer can fit both


def _answers(eval_manifest: Path, server: ChatServer) -> list[int]:
    """Ground-truth answers in the served family's frame for each evaluation prompt (an image may have several
    questions, a question several images); their token counts."""
    from training.evaluate import _image, rows_from_shards
    from vlmr1.families import get_family
    from vlmr1.records import answer_text, parse_solution

    family = get_family("qwen2_5_vl")
    frame, tokens, owners = family.frame(), [], {}
    for r in rows_from_shards(Path(eval_manifest).parent):
        targets = parse_solution(r["solution"])
        # two decimals: a whole-pixel box loses IoU >= 0.95 on a small object, and AP counts that threshold too
        boxes = [frame.from_original(np.array([t.bbox]), r["width"], r["height"]).round(2)[0] for t in targets]
        moved = tuple(type(t)(t.label, tuple(b.tolist())) for t, b in zip(targets, boxes))
        text = f"<think>it is there</think><answer>{answer_text(r['task'], moved)}</answer>"
        image = _image(r)
        key = (_pixels(image.resize(family.resized(*image.size))), r["problem"])
        if ANSWERS.get(key, [text]) != [text]:  # a planted twin: the same words on the same image, another box
            AMBIGUOUS.update({r["sample_id"], owners[key]})
        ANSWERS[key], owners[key] = [text], r["sample_id"]
        tokens.append(len(server.tokenizer(text)["input_ids"]) if r["task"] == "ovd" else 0)
    return tokens


def _cli_face(face: Path, files: dict, server, capsys, monkeypatch) -> list[dict]:
    """Each stage as a user types it; the reports as ``vlmr1 --report`` writes them."""
    log, c = face / "reports.jsonl", face / "c.duckdb"

    def vlmr1(*args):
        code, out, err = vlmr1_in_process(capsys, monkeypatch, "--report", log, *args)
        assert code == 0, (args, out[-3000:], err[-3000:])

    for kind, path, images in files["sources"]:
        vlmr1("ingest", kind, path, "--catalog", c, "--images", images)
    vlmr1("quality", "default", "--catalog", c)
    vlmr1("score", "default", "--catalog", c, "--config", files["scorer"])
    vlmr1("score", "default", "--catalog", c, "--config", files["scorer-current"])
    base, current = (json.loads(line)["counts"]["scorer"] for line in log.read_text().splitlines()[-2:])
    vlmr1("shard", "default", "--catalog", c, "--out", face / "train", "--scorer", base)
    vlmr1("shard", "default", "--catalog", c, "--out", face / "eval", "--eval")
    tokens = _answers(face / "eval" / "manifest.json", server)
    vlmr1("train", files["train"], "--manifest", face / "train", "--output", face / "run", "--catalog", c)
    vlmr1("record", face / "run", "--manifest", face / "train", "--config", files["train"], "--catalog", c)
    vlmr1("eval", face / "run" / "final", "--data", face / "eval", "--config", files["train"], "--engine", "openai",
          "--base-url", server.url, "--catalog", c, "--run", "faces")  # fmt: skip
    vlmr1("reprofile", "--base", base, "--current", current, "--catalog", c)
    vlmr1("export", face / "train", "--to", "vlmr1-jsonl", "--out", face / "export")
    return [json.loads(line) for line in log.read_text().splitlines()], tokens


def _prefect_face(face: Path, files: dict, server) -> list[dict]:
    """Each stage as its Prefect task, in one flow run on a real server."""
    from prefect import flow

    from curation.difficulty.config import load_scorer_config
    from curation.ingest.source import SourceSpec
    from flows.params import CatalogRef, FileRef, ModelRef, RecipeRef
    from flows.tasks import (
        eval_task,
        export_task,
        ingest_task,
        quality_task,
        record_task,
        reprofile_task,
        score_task,  # fmt: skip
        shard_task,
        train_task,
    )
    from training.evaluate import EvalConfig

    @flow(name="faces")
    def faces() -> list:
        c, default = CatalogRef(path=str(face / "c.duckdb")), RecipeRef(spec="default")
        reports = [ingest_task(c, SourceSpec(kind=k, path=str(p), images=[str(i)])) for k, p, i in files["sources"]]
        reports.append(quality_task(c, default))
        reports += [score_task(c, default, load_scorer_config(files[s])) for s in ("scorer", "scorer-current")]
        base, current = (r.counts["scorer"] for r in reports[-2:])
        reports.append(shard_task(c, default, base, str(face / "train"), "train"))
        reports.append(shard_task(c, default, None, str(face / "eval"), "eval"))
        manifest, ev = (FileRef(path=r.files["manifest"]) for r in reports[-2:])
        train = FileRef(path=str(files["train"]))
        reports.append(train_task(train, manifest, str(face / "run"), 1, catalog=c))
        reports.append(record_task(c, manifest, str(face / "run"), str(files["model"])))
        served = EvalConfig(engine={"kind": "openai", "base_url": server.url})
        final = ModelRef(path=str(face / "run" / "final"))
        reports.append(eval_task(final, ev, c, "faces", config=served, train_config=train))
        reports.append(reprofile_task(c, base, current))
        reports.append(export_task(manifest, "vlmr1-jsonl", str(face / "export")))
        return [r.to_dict() for r in reports]

    return faces()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("faces-prefect")
    env, server = start_prefect_server(home)
    yield env, home
    stop_in_order(server)


def _normal(report: dict, face: Path) -> dict:
    """The report with this face's folder written as <face>, wall-clock parts and run ids (hashes of the
    checkpoint's path) left out."""
    text = json.dumps(report, default=str).replace(str(face.resolve()), "<face>").replace(str(face), "<face>")
    for key in ("run", "recorded run"):
        if report["counts"].get(key):
            text = text.replace(report["counts"][key], "<run id>")
    r = json.loads(text)
    r.pop("timings")
    for key in VOLATILE | {"run", "recorded run"}:
        r["counts"].pop(key, None)
    return r


def test_every_stage_gives_the_same_outputs_and_report_through_the_cli_and_its_prefect_task(
    inputs, prefect_server, capsys, monkeypatch
):
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    root, files, server = inputs
    cli_dir, prefect_dir = root / "cli", root / "prefect"
    cli_dir.mkdir(), prefect_dir.mkdir()
    cli, tokens = _cli_face(cli_dir, files, server, capsys, monkeypatch)
    sent_by_cli = [p["max_tokens"] for p in server.payloads]
    server.payloads.clear()
    env, home = prefect_server
    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"], PREFECT_HOME: str(home)}):
        flow = _prefect_face(prefect_dir, files, server)
    stages = [r["stage"] for r in cli]
    assert stages == [r["stage"] for r in flow] == [
        "ingest", "ingest", "ingest", "quality", "score", "score", "shard", "shard", "train", "record", "evaluate",
        "reprofile", "export",
    ]  # fmt: skip
    for a, b in zip(cli, flow):
        assert _normal(a, cli_dir) == _normal(b, prefect_dir), a["stage"]
    # the outputs themselves: shards (manifests equal but for the catalog's path), catalog rows, evaluation
    for pool in ("train", "eval"):
        manifests = [json.loads((d / pool / "manifest.json").read_text()) for d in (cli_dir, prefect_dir)]
        for m in manifests:
            m["catalog"].pop("path")
        assert manifests[0] == manifests[1]
    assert _catalog_rows(cli_dir) == _catalog_rows(prefect_dir)
    # evaluation: as long as training lets answers be, on the user's engine, OVD answers read whole
    limit = yaml.safe_load(files["train"].read_text())["max_completion_length"]
    assert max(tokens) > 48 and limit >= max(tokens)
    assert set(sent_by_cli) == {p["max_tokens"] for p in server.payloads} == {limit}
    for report in (cli, flow):
        ovd = report[10]["tables"]["ovd metrics"]
        assert ovd and all(row["mAP"] == pytest.approx(1.0) for row in ovd), ovd
        samples = json.loads(Path(report[10]["files"]["results"]).read_text())["samples"]
        rec = [x["hit"] for x in samples if x["task"] == "rec" and x["sample_id"] not in AMBIGUOUS]
        assert len(rec) >= 10 and all(hit == 1.0 for hit in rec), rec


def _catalog_rows(face: Path) -> dict:
    from helpers import rows

    db = face / "c.duckdb"
    return {
        table: rows(db, f"SELECT {cols} FROM {table} ORDER BY ALL")
        for table, cols in (
            ("samples", "sample_id, source, split, task, problem, solution"),
            ("quality_flags", "*"),
            ("difficulty", "*"),
            ("rollouts", "*"),
            ("training_rewards", "* EXCLUDE (run_id)"),
            ("evaluations", "* EXCLUDE (checkpoint, created_at)"),  # the checkpoint: this face's folder
        )
    }
