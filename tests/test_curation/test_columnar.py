"""The columnar selection and shard writer (issue 18) against the row-wise code they replaced
(``kit.rowwise``): the same samples in the same order, the same funnel, byte-identical shards."""

import itertools
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation import catalog
from curation.quality.apply import evaluate_recipe
from curation.quality.recipe import Recipe, load_recipe
from curation.quality.recipe import Selection as SelectionSpec
from curation.selection.select import Selection, equal_size, select
from curation.shards.write import _write_parquet, write_shards
from helpers import coco_and_refcoco_catalog
from kit import rowwise
from vlmr1.prompts import WHITESPACE, build_messages

SCORER = "planted-scorer"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """The fixture catalog with a planted difficulty table: many ties (five pass rates), zero and non-zero
    std, posteriors (some missing), and a fifth of the candidates left unscored."""
    root = tmp_path_factory.mktemp("columnar")
    path = coco_and_refcoco_catalog(root, 14, 10, recipes=("none", "default"))
    with catalog.connect(path) as con:
        ids = [r[0] for r in con.execute("SELECT sample_id FROM samples ORDER BY sample_id").fetchall()]
        con.execute("INSERT INTO scorers (scorer_key, spec) VALUES (?, '{}')", [SCORER])
        for i, sid in enumerate(ids):
            if i % 5 == 4:
                continue  # unscored
            rate, std = (i % 5) / 4, 0.0 if i % 3 == 0 else 0.2
            band = "all_fail" if rate == 0 else "all_pass" if rate == 1 else "mixed"
            # the posterior: varied, and missing in every seventh row (scored before schema 6)
            post = [None] * 3 if i % 7 == 0 else [(i % 11) / 10, rate * 0.5, min(1.0, rate * 0.5 + (i % 4) / 6)]
            con.execute(
                "INSERT INTO difficulty (scorer_key, sample_id, k, n_pass, pass_rate, pass_at_1, pass_at_k, "
                "reward_mean, reward_std, format_rate, band, suspect_annotation, p_no_signal, post_low, post_high) "
                "VALUES (?, ?, 4, ?, ?, ?, ?, ?, ?, 1.0, ?, false, ?, ?, ?)",
                [SCORER, sid, int(rate * 4), rate, rate, rate, rate, std, band, *post],
            )
    return path


def _recipe(db, base: str, **selection) -> Recipe:
    recipe = Recipe(name="grid", rules=load_recipe(base).rules, selection=SelectionSpec(**selection))
    evaluate_recipe(db, recipe)
    return recipe


def _same(db, recipe: Recipe, scorer, pool="train") -> Selection:
    sel = select(db, recipe, scorer, pool=pool)
    rows, funnel = rowwise.select(db, recipe, scorer, pool=pool)
    assert sel.funnel == funnel
    assert [r["sample_id"] for r in sel.rows] == [r["sample_id"] for r in rows]
    assert sel.rows == rows  # every value, type included
    return sel


BALANCE = [None, "source", "task", "split", "band", "difficulty_bucket", "category"]
OPTIONS = {
    "difficulty": [
        {},
        {"min_pass_rate": 0.25, "max_pass_rate": 0.75},
        {"require_signal": True},
        {"max_no_signal": 0.6},
        {"max_interval": 0.5, "min_pass_rate": 0.1},
    ],  # fmt: skip
    "caps": [{}, {"coco": 3}, {"coco": 0, "refcoco": 100}],
    "pool_size": [None, 5, 1000],
    "curriculum": ["shuffled", "easy_to_hard"],
    "seed": [0, 7],
}


@pytest.mark.parametrize("balance_by", BALANCE)
def test_every_selection_option_selects_what_the_row_wise_code_selects(db, balance_by):
    """Each balancing key crossed with a sweep of the other options (each value at least once, many pairs)."""
    n = 0
    keys = list(OPTIONS)
    for i, values in enumerate(itertools.product(*OPTIONS.values())):
        if i % 17:  # a stride through the full product: every value of every option (7 of 108 combinations)
            continue
        spec = dict(zip(keys, values), balance_by=balance_by)
        recipe = _recipe(db, "default" if i % 2 else "none", **spec)
        for scorer in (SCORER, None):
            sel = _same(db, recipe, scorer)
            n += len(sel)
    assert n > 0


def test_empty_groups_ties_and_a_pool_that_empties(db):
    """A band nothing passes, caps that remove a whole source before balancing, the eval pool."""
    empty = _recipe(db, "none", difficulty={"min_pass_rate": 0.9, "max_pass_rate": 0.95}, balance_by="source")
    assert len(_same(db, empty, SCORER)) == 0
    one_source = _recipe(db, "none", caps={"coco": 0}, balance_by="source", pool_size=7, curriculum="easy_to_hard")
    assert {r["source"] for r in _same(db, one_source, SCORER).rows} == {"refcoco"}
    assert len(_same(db, load_recipe("default"), None, pool="eval")) > 0


def test_equal_size_keeps_the_same_samples_in_the_same_order(db):
    recipes = [_recipe(db, "none", seed=3, curriculum="easy_to_hard"), _recipe(db, "default", pool_size=9)]
    pools = equal_size([select(db, r, SCORER) for r in recipes])
    reference = rowwise.equal_size([(rowwise.select(db, r, SCORER)[0], r.selection.seed) for r in recipes])
    assert [p.rows for p in pools] == reference and len({len(p) for p in pools}) == 1


def _reference_shards(rows, folder, template, embed, max_rows, max_bytes):
    roots = [] if embed else sorted({rowwise.root_and_key(r)[0] for r in rows})
    folder.mkdir()
    return _write_parquet(rowwise.shard_batches(rows, roots, template, embed), folder, max_rows, max_bytes), roots


@pytest.mark.parametrize(
    "embed,template,max_rows,max_bytes",
    [(False, "vlmr1", 7, 512 << 20), (False, "plain", 1000, 3000), (True, "vlmr1", 5, 20_000)],
)
def test_shards_are_byte_identical_to_the_row_wise_writer(db, tmp_path, embed, template, max_rows, max_bytes):
    recipe = _recipe(db, "default", balance_by="category", curriculum="easy_to_hard")
    sel = _same(db, recipe, SCORER)
    manifest = json.loads(
        write_shards(
            sel, db, tmp_path / "new", embed_images=embed, template=template, max_rows=max_rows, max_bytes=max_bytes
        ).read_text()
    )
    shards, roots = _reference_shards(sel.rows, tmp_path / "old", template, embed, max_rows, max_bytes)
    assert manifest["shards"] == shards and len(shards) > 1
    assert manifest["image_roots"] == roots
    assert manifest["counts"] == rowwise.counts(sel.rows)
    for s in shards:
        assert (tmp_path / "new" / s["file"]).read_bytes() == (tmp_path / "old" / s["file"]).read_bytes()
    if not embed:
        expected = rowwise.image_checksums(sel.rows, roots, db)
        assert pq.read_table(tmp_path / "new" / "images.parquet").to_pydict() == expected
        assert all(expected["sha256"])
    top = ", ".join(
        f"{k} ({v})" for k, v in sorted(rowwise.categories(sel.rows).items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    )
    assert top in (tmp_path / "new" / "selection.md").read_text()


ODD_PROBLEMS = [
    "  the dog on the left. ",
    "man\x1c\x1d\x1e\x1f",
    "\u3000woman in red\u2028..",
    "chair ... .",
    "{braces} and {{doubled}} and %s",
    "émoji 🐈 cat\x85",
    "",
    "...",
    " . ",
]


def _edited(db, tmp_path, sql: str, *args):
    """A copy of the catalog with ``sql`` applied to its samples (the sources, so the quality flags, unchanged)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    copy = tmp_path / "edited.duckdb"
    shutil.copy(db, copy)
    with catalog.connect(copy) as con:
        con.execute(sql, list(args))
    return copy


def test_prompts_match_build_messages_for_odd_problems(db, tmp_path):
    """Whitespace Python strips but a naive strip would not, trailing dots, braces, non-ASCII, empty problems: the
    columnar prompt text equals ``build_messages`` for both tasks and both templates."""
    problems = ODD_PROBLEMS + ["'cat', \"rider's helmet\"", "'a.'  ", *ODD_PROBLEMS[:-2]]
    tasks = ["rec"] * len(ODD_PROBLEMS) + ["ovd"] * len(ODD_PROBLEMS)
    ids = [r["sample_id"] for r in select(db, load_recipe("none"), None).rows[: len(problems)]]
    edits = pa.table({"sample_id": ids, "p": problems, "t": tasks})
    with catalog.connect(copy := _edited(db, tmp_path, "SELECT 1")) as con, catalog.registered(con, "edits", edits):
        con.execute("UPDATE samples SET problem = e.p, task = e.t FROM edits e WHERE samples.sample_id = e.sample_id")
    want = dict(zip(ids, zip(tasks, problems)))
    for template in ("vlmr1", "plain"):
        out = tmp_path / template
        write_shards(select(copy, load_recipe("none"), None), copy, out, template=template)
        got = pa.concat_tables(pq.read_table(f) for f in sorted(out.glob("shard-*.parquet")))
        prompts = dict(zip(got.column("sample_id").to_pylist(), got.column("prompt").to_pylist()))
        for sid, (task, problem) in want.items():
            expected = build_messages(task, problem, template)[0]["content"][1]
            assert prompts[sid] == [{"role": "user", "content": [{"type": "image", "text": None}, expected]}], problem


def test_the_whitespace_set_is_pythons():
    import sys

    assert WHITESPACE == "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


def test_a_sample_without_an_image_file_or_with_an_unknown_task_is_named(db, tmp_path):
    first = select(db, load_recipe("none"), None).table["sample_id"]
    no_file = _edited(
        db, tmp_path / "a", "UPDATE samples SET image_path = NULL WHERE sample_id IN (?, ?)", *first[2:4]
    )
    with pytest.raises(ValueError, match=f"sample {first[2]} has no image file"):
        write_shards(select(no_file, load_recipe("none"), None), no_file, tmp_path / "a" / "out")
    odd = _edited(db, tmp_path / "b", "UPDATE samples SET task = 'vqa' WHERE sample_id = ?", first[3])
    with pytest.raises(ValueError, match=f"unknown task 'vqa' \\(sample {first[3]}\\)"):
        write_shards(select(odd, load_recipe("none"), None), odd, tmp_path / "b" / "out")
