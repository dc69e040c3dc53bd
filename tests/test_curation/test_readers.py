"""The reader shape: a registry by kind, options as validated fields, identity from the resolved fields."""

import json

import pytest
from pydantic import ValidationError

from curation.demo.fixtures import make_coco, make_refcoco, make_vlmr1_jsonl
from curation.ingest import READERS, CocoReader, D3Reader, JsonlReader, RefcocoReader, ingest, make_reader
from curation.ingest.images import ImageCheck
from curation.ingest.source import SourceSpec
from curation.ingest.store import ingest_file
from helpers import rows as _rows


def test_registry_names_every_reader_by_its_kind():
    assert READERS == {"coco": CocoReader, "refcoco": RefcocoReader, "d3": D3Reader, "jsonl": JsonlReader}


def test_an_unknown_option_or_kind_is_one_line_naming_it():
    with pytest.raises(ValueError) as err:
        make_reader("coco", absnet=2)
    assert str(err.value).splitlines() == ["coco reader option 'absnet': Extra inputs are not permitted"]
    with pytest.raises(ValueError, match="unknown source kind 'cocoa'"):
        make_reader("cocoa")
    with pytest.raises(ValueError, match="'absent'"):
        make_reader("coco", absent=-1)


def test_defaults_that_depend_on_the_file_are_resolved_before_the_identity(tmp_path):
    refs = make_refcoco(tmp_path / "refer", n_images=4)
    resolved = RefcocoReader().for_file(refs)
    assert resolved.source == refs.parent.name.lower() and resolved.instances == refs.parent / "instances.json"
    assert RefcocoReader(source=resolved.source, instances=resolved.instances).for_file(refs) == resolved
    assert CocoReader().for_file(tmp_path / "instances_val2017.json").split == "val2017"
    assert JsonlReader().for_file(tmp_path / "lines.jsonl").source == "lines"


def test_the_same_options_spelled_two_ways_are_one_identity(tmp_path):
    """Defaults left out or written out: the second ingest is a skip, not a re-ingest with a new file id."""
    refs = make_refcoco(tmp_path / "refer", n_images=4)
    db = tmp_path / "c.duckdb"
    first = ingest("refcoco", db, refs)
    again = ingest("refcoco", db, refs, source=refs.parent.name.lower(), instances=str(refs.parent / "instances.json"))
    assert again.skipped and again.file_id == first.file_id
    other = ingest("refcoco", db, refs, source="mine")
    assert not other.skipped and other.replaced == first.file_id


def test_sources_record_the_readers_fields(tmp_path):
    coco = make_coco(tmp_path / "coco", n_images=3)
    db = tmp_path / "c.duckdb"
    ingest_file(db, coco, CocoReader(absent=1, seed=7))
    [(kind, source, options)] = _rows(db, "SELECT kind, source, options FROM sources")
    assert (kind, source) == ("coco", "coco")
    assert json.loads(options) == {"source": "coco", "split": "train2017", "absent": 1, "seed": 7}


def test_the_flow_offers_the_cli_reader_options(tmp_path):
    """SourceSpec: reader options validated with the parameters, image checks that verify or keep bad images."""
    root = make_vlmr1_jsonl(tmp_path / "vlmr1").parent
    spec = SourceSpec(kind="jsonl", path=str(root / "x.jsonl"), images=[str(root / "images")], keep_bad_images=True)
    check = spec.image_check()
    assert isinstance(check, ImageCheck) and check.reject is False and check.verify is False
    assert SourceSpec(kind="coco", path="p", images=["r"], verify_images=True).image_check().verify is True
    assert spec.reader() == JsonlReader()
    with pytest.raises(ValidationError, match="jsonl reader option 'splt'"):
        SourceSpec(kind="jsonl", path="p", options={"splt": "val"})


def test_the_cli_offers_every_reader_field():
    """Each `vlmr1 ingest <kind>` option set covers its reader's fields (the flow passes them as options)."""
    from typer.main import get_command

    from flows.cli import app

    ingest_group = get_command(app).commands["ingest"]
    for kind, reader in READERS.items():
        options = {p.name for p in ingest_group.commands[kind].params}
        derived = {"pairs", "source"} if kind == "d3" else set()  # derived by for_file, or fixed to "d3"
        assert set(reader.model_fields) - derived <= options, kind
