"""Every mistake a new user made in the first hour (issue list of the onboarding review): one line on stderr naming
the file, option or record, what is wrong and what would be right; a non-zero exit; never a traceback.

Run in-process through the console script's entry point (``flows.cli.run``), which is what turns errors into lines.
"""

import json
import sys
from pathlib import Path

import pytest

from curation.demo.fixtures import make_coco
from curation.demo.inputs import write_train_config
from helpers import coco_and_refcoco_catalog, vlmr1_in_process

vlmr1 = vlmr1_in_process


def one_line(err: str) -> str:
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    return err.strip()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return coco_and_refcoco_catalog(tmp_path_factory.mktemp("mistakes"), 3, 3, recipes=("none",))


@pytest.fixture(scope="module")
def shards(catalog):
    from curation.quality.recipe import load_recipe
    from curation.selection.select import select
    from curation.shards.write import write_shards

    out = catalog.parent / "shards" / "train"
    write_shards(select(catalog, load_recipe("none")), catalog, out)
    return out


@pytest.fixture
def model(tmp_path):
    """A model folder as far as a pre-launch check looks (its config names the family; weights, tokenizer and
    processor config are there)."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    for name in ("model.safetensors", "tokenizer.json", "processor_config.json"):
        (tmp_path / "m" / name).write_text("{}")
    return tmp_path / "m"


@pytest.mark.parametrize("command", ["quality", "score", "shard"])
def test_a_mistyped_recipe_lists_the_shipped_ones(capsys, monkeypatch, catalog, tmp_path, command):
    for recipe in ("defualt", tmp_path / "my_recipe.yaml"):
        extra = (
            ["--out", tmp_path / "s"] if command == "shard" else ["--model", tmp_path] if command == "score" else []
        )
        code, _, err = vlmr1(capsys, monkeypatch, command, recipe, "--catalog", catalog, *extra)
        line = one_line(err)
        assert code == 2 and str(recipe) in line and "shipped: default, none, strict" in line


def test_train_refuses_an_unknown_deepspeed_preset_before_launching(capsys, monkeypatch, model, shards, tmp_path):
    config = write_train_config(tmp_path / "train.yaml", model)
    config.write_text(config.read_text().replace("deepspeed: zero2", "deepspeed: zero4"))
    line_no = next(i for i, x in enumerate(config.read_text().splitlines(), 1) if x.startswith("deepspeed:"))
    code, _, err = vlmr1(capsys, monkeypatch, "train", config, "--manifest", shards, "--output", tmp_path / "o")
    assert code == 2 and f"{config}:{line_no}: deepspeed: 'zero4' is not zero2, zero3, null" in one_line(err)
    assert not (tmp_path / "o").exists()  # nothing was launched


def test_train_refuses_a_missing_model_before_launching(capsys, monkeypatch, shards, tmp_path):
    config = write_train_config(tmp_path / "train.yaml", tmp_path / "no-such-model")
    code, _, err = vlmr1(capsys, monkeypatch, "train", config, "--manifest", shards, "--output", tmp_path / "o")
    line = one_line(err)
    assert code == 2 and f"{config}:" in line and "model:" in line and "no such model folder" in line
    assert not (tmp_path / "o").exists()


def test_a_mistyped_shard_folder_is_named_with_the_sets_beside_it(capsys, monkeypatch, model, shards, tmp_path):
    """`shards/trian` used to name the parent folder and suggest an interrupted write."""
    typo = shards.parent / "trian"
    config = write_train_config(tmp_path / "train.yaml", model)
    code, _, err = vlmr1(capsys, monkeypatch, "train", config, "--manifest", typo, "--output", tmp_path / "o")
    line = one_line(err)
    assert code == 2 and f"{typo}: no such shard folder; shard sets there: {shards}" in line
    assert "interrupted" not in line and not (tmp_path / "o").exists()
    code, _, err = vlmr1(capsys, monkeypatch, "export", typo, "--to", "easyr1", "--out", tmp_path / "e")
    assert code == 2 and f"{typo}: no such shard folder" in one_line(err)


def test_score_with_nothing_to_score_exits_1_before_a_model_loads(capsys, monkeypatch, tmp_path):
    """`vlmr1 score` before any ingest of a training split used to report 0 candidates after 27 s, exit 0."""
    empty = tmp_path / "c.duckdb"
    coco = tmp_path / "c.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    code, _, err = vlmr1(capsys, monkeypatch, "ingest", "coco", coco, "--catalog", empty)
    assert code == 1 and f"{coco}: no sample ingested (expected a COCO instances json" in err
    code, _, err = vlmr1(capsys, monkeypatch, "score", "none", "--catalog", empty, "--model", tmp_path / "none")
    assert code == 1 and "keeps no training sample to score" in err.strip().splitlines()[-1]


def test_score_names_a_missing_model_folder(capsys, monkeypatch, catalog, tmp_path):
    code, _, err = vlmr1(capsys, monkeypatch, "score", "none", "--catalog", catalog, "--model", tmp_path / "nope")
    assert code == 2 and f"{tmp_path / 'nope'}: no such model folder" in err.strip().splitlines()[-1]


def test_ingest_of_a_file_in_another_format_names_the_command_that_reads_it(capsys, monkeypatch, tmp_path):
    """A one-line jsonl handed to `ingest coco` used to be status `new`, 0 samples, exit 0; a COCO file handed to
    `ingest refcoco` said "instances.json: missing"."""
    lines = tmp_path / "train.jsonl"
    lines.write_text(json.dumps({"image": "a.jpg", "conversations": []}) + "\n")
    coco = make_coco(tmp_path / "coco", n_images=2)
    for kind, path, right in (("coco", lines, "jsonl"), ("refcoco", coco, "coco"), ("jsonl", coco, "coco")):
        code, out, err = vlmr1(capsys, monkeypatch, "ingest", kind, path, "--catalog", tmp_path / "c.duckdb")
        first, rest = err.splitlines()[0], err.splitlines()[1:]
        assert code == 1 and "failed" in out
        assert rest == ["error: 1 of 1 files failed or gave no sample; nothing was ingested"]
        assert first.startswith(f"{path}: this is ") and first.endswith(f"; use `vlmr1 ingest {right}`"), first


def test_ingest_with_images_one_level_off_names_the_root_that_holds_them(capsys, monkeypatch, tmp_path):
    """Every image missing used to end in "no sample ingested (expected a COCO instances json ...)", blaming the
    annotation file, with the cause in a table cell."""
    coco = make_coco(tmp_path / "coco", n_images=3)
    db = tmp_path / "c.duckdb"
    for given in (tmp_path, tmp_path / "coco" / "annotations"):  # the parent of the right root, and a sibling
        code, _, err = vlmr1(capsys, monkeypatch, "ingest", "coco", coco, "--catalog", db, "--images", given)
        line = err.splitlines()[0]
        assert code == 1 and line.startswith(f"{coco}: no sample ingested: the images of 3 samples are missing"), line
        assert line.endswith(f"; --images {tmp_path / 'coco'} holds it"), line
    code, _, err = vlmr1(capsys, monkeypatch, "ingest", "coco", coco, "--catalog", db, "--images", tmp_path / "nope")
    assert code == 1 and err.splitlines()[0].endswith("give --images the folder its image paths are relative to")


def test_a_bug_is_one_line_and_debug_shows_the_traceback(capsys, monkeypatch, catalog):
    import curation.overview

    def broken(*_):
        raise KeyError("a bug of ours")

    monkeypatch.setattr(curation.overview, "overview", broken)
    code, _, err = vlmr1(capsys, monkeypatch, "catalog", catalog)
    assert code == 1 and "internal error: KeyError: 'a bug of ours' (run `vlmr1 --debug" in one_line(err)
    with pytest.raises(KeyError):
        vlmr1(capsys, monkeypatch, "--debug", "catalog", catalog)


def test_a_half_finished_model_folder_is_named_before_anything_is_registered(capsys, monkeypatch, catalog, tmp_path):
    """Only config.json (a download that stopped) used to be `internal error: OSError: Can't load image processor
    ... huggingface.co ...`, with a scorer row registered anyway."""
    half = tmp_path / "Qwen2.5-VL-3B-Instruct"
    half.mkdir()
    (half / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    scorers = _rows(catalog, "SELECT count(*) FROM scorers")
    code, _, err = vlmr1(capsys, monkeypatch, "score", "none", "--catalog", catalog, "--model", half)
    line = err.strip().splitlines()[-1]
    assert code == 2 and line.startswith(f"error: {half}: an incomplete model folder"), line
    assert "weights (model.safetensors or model.safetensors.index.json)" in line and "processor config" in line
    assert _rows(catalog, "SELECT count(*) FROM scorers") == scorers  # nothing registered
    (half / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00001-of-00002"}}))
    code, _, err = vlmr1(capsys, monkeypatch, "score", "none", "--catalog", catalog, "--model", half)
    assert code == 2 and "weight shard model-00001-of-00002" in err.strip().splitlines()[-1]


def _rows(db, sql):
    from helpers import rows

    return rows(db, sql)


@pytest.fixture
def held(catalog):
    """The catalog's write lock held by another process (a notebook's connection): its pid."""
    import subprocess
    import time

    script = f"import duckdb, time; c = duckdb.connect({str(catalog)!r}); print('held', flush=True); time.sleep(120)"
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    time.sleep(0.2)
    yield holder.pid
    holder.kill()
    holder.wait()


def test_every_command_on_a_held_catalog_exits_3_naming_the_holder(capsys, monkeypatch, catalog, shards, held,
                                                                  model, tmp_path):  # fmt: skip
    """`vlmr1 catalog` printed DuckDB's raw lock error; score, shard, eval and lineage called it an internal error.
    Every command that reads or writes a catalog answers from the one error table: exit 3, one line naming the
    holder, and nothing written (the catalog's bytes, no shards, no training output, no evaluation results)."""
    import hashlib

    monkeypatch.setenv("VLMR1_CATALOG_WAIT", "0.5")
    config = write_train_config(tmp_path / "train.yaml", model)
    before = hashlib.sha256(catalog.read_bytes()).hexdigest()
    commands = [
        ["train", config, "--manifest", shards, "--output", tmp_path / "t", "--catalog", catalog],
        ["record", tmp_path / "t", "--manifest", shards, "--config", config, "--catalog", catalog],
        ["catalog", catalog],
        ["quality", "none", "--catalog", catalog],
        ["score", "none", "--catalog", catalog, "--model", model],
        ["shard", "none", "--catalog", catalog, "--out", tmp_path / "s"],
        ["eval", model, "--data", shards, "--catalog", catalog],
        ["lineage", model, "--catalog", catalog],
        ["reprofile", "--base", "a", "--current", "b", "--catalog", catalog, "--out", tmp_path / "r"],
        ["ingest", "coco", make_coco(tmp_path / "coco", n_images=2), "--catalog", catalog],
    ]
    for args in commands:
        code, _, err = vlmr1(capsys, monkeypatch, *args)
        assert code == 3, (args[0], code, err)
        line = one_line(err)
        assert line.startswith(f"error: catalog {catalog} is in use by pid {held} ({sys.executable} -c import"), line
        assert line.endswith("(waited 0.5 s); close it there (a notebook: con.close()) or wait, then run this again")
    assert hashlib.sha256(catalog.read_bytes()).hexdigest() == before  # nothing half-written
    assert not any((tmp_path / d).exists() for d in ("s", "t", "r")) and not (Path(model) / "eval").exists()
    monkeypatch.setenv("VLMR1_CATALOG_WAIT", "1")  # a wait a person would notice is announced at once
    code, _, err = vlmr1(capsys, monkeypatch, "catalog", catalog)
    assert code == 3 and err.splitlines()[0].endswith("; waiting up to 1 s")


def test_export_refuses_a_folder_with_files_unless_overwrite(capsys, monkeypatch, shards, tmp_path):
    """`vlmr1 export` used to replace the user's files of the same name without a word."""
    out = tmp_path / "export"
    out.mkdir()
    (out / "train.parquet").write_text("the user's own file")
    code, _, err = vlmr1(capsys, monkeypatch, "export", shards, "--to", "easyr1", "--out", out)
    assert code == 2 and one_line(err).startswith(
        f"error: {out}: --out is not empty (1 entries, e.g. train.parquet); give"
    )
    assert (out / "train.parquet").read_text() == "the user's own file"
    code, _, _ = vlmr1(capsys, monkeypatch, "export", shards, "--to", "easyr1", "--out", out, "--overwrite")
    assert code == 0 and (out / "train.parquet").read_bytes()[:4] == b"PAR1"


def test_an_altered_or_deleted_images_parquet_fails_the_set(capsys, monkeypatch, shards, tmp_path):
    """images.parquet was listed with a sha256 in the manifest but never verified: altered, the set still exported."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(shards.resolve(), copy)
    (copy / "images.parquet").write_bytes((copy / "images.parquet").read_bytes() + b"\0")
    code, _, err = vlmr1(capsys, monkeypatch, "export", copy, "--to", "easyr1", "--out", tmp_path / "e")
    altered = f"error: {copy / 'images.parquet'}: sha256 differs from the manifest (the file was altered)"
    assert code == 2 and one_line(err) == altered
    (copy / "images.parquet").unlink()
    code, _, err = vlmr1(capsys, monkeypatch, "export", copy, "--to", "vlmr1-jsonl", "--out", tmp_path / "v")
    assert (
        code == 2
        and one_line(err) == f"error: {copy / 'images.parquet'}: missing (the manifest lists it with a sha256)"
    )


def test_an_unknown_evaluation_engine_is_one_line_naming_the_option(capsys, monkeypatch, model, shards):
    """`--engine nope` printed pydantic's "1 validation error for EvalConfig (+3 more lines)"."""
    code, _, err = vlmr1(capsys, monkeypatch, "eval", model, "--data", shards, "--engine", "nope")
    assert code == 2 and one_line(err).startswith("error: evaluation option engine.kind: Input should be 'hf'")
