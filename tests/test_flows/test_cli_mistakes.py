"""Every mistake a new user made in the first hour (issue list of the onboarding review): one line on stderr naming
the file, option or record, what is wrong and what would be right; a non-zero exit; never a traceback.

Run in-process through the console script's entry point (``flows.cli.run``), which is what turns errors into lines.
"""

import json
import sys

import pytest

from curation.testing.demo import write_train_config
from curation.testing.fixtures import make_coco
from helpers import coco_and_refcoco_catalog


def vlmr1(capsys, monkeypatch, *args) -> tuple[int, str, str]:
    from flows.cli import run

    monkeypatch.setattr(sys, "argv", ["vlmr1", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "250")
    code = 0
    try:
        run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(err: str) -> str:
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    return err.strip()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return coco_and_refcoco_catalog(tmp_path_factory.mktemp("mistakes"), 3, 3, recipes=("none",))


@pytest.fixture(scope="module")
def shards(catalog):
    from curation.quality.recipe import load_recipe
    from curation.selection import select
    from curation.shards import write_shards

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
        assert code == 1 and "failed" in out and rest == ["1 of 1 files failed or gave no sample; nothing was ingested"]
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
