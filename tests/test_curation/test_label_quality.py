"""Label quality from stored rollouts: planted wrong labels are found and clean labels with the same rollout
agreement are not; unknown when answers do not parse; OVD bad locations and overlooked objects; the review page
in a real headless Chromium; the COCO files in pycocotools.

The testbed's noisy source carries all three planted kinds (wrong referent, inaccurate box, swapped expression),
listed exactly in ``label_errors.json``. The policy is scripted: it knows each scene from the clean source and
answers the object an expression names, 7 times in 8, and another object of the image otherwise.
"""

import contextlib
import io
import json
import random

import duckdb
import pytest
from PIL import Image

from curation.demo.fixtures import write_jpeg
from curation.demo.shapes import CELL, INSET, SHAPE
from curation.demo.testbed import TestbedSpec, write_testbed
from curation.difficulty import label_quality
from curation.difficulty.config import ScorerConfig
from curation.difficulty.scoring import score_recipe
from curation.ingest import make_reader
from curation.ingest.images import ImageCheck
from curation.ingest.store import ingest_file
from curation.quality.apply import evaluate_recipe, flagged_ids
from curation.quality.recipe import load_recipe
from kit.policies import ScriptedPolicy, pixels_key

SPEC = TestbedSpec(train_images=60, eval_images=10, wrong_box=0.12, inaccurate_box=0.12, swapped_expression=0.12)
K = 8


def _drawn(box) -> tuple:
    """Where the shape of a labelled box is drawn: its cell's fixed place (a planted degenerate or out-of-bounds
    label keeps its corner in the right cell)."""
    x, y = int(box[0] // CELL) * CELL + INSET, int(box[1] // CELL) * CELL + INSET
    return (x, y, x + SHAPE, y + SHAPE)


def _truth(catalog) -> dict:
    """(pixels, expression) -> the drawn boxes, and pixels -> every object's, from the clean source."""
    con = duckdb.connect(str(catalog), read_only=True)
    rows = con.execute("SELECT image_path, problem, solution FROM samples WHERE source = 'shapes'").fetchall()
    con.close()
    named, objects, keys = {}, {}, {}
    for path, problem, solution in rows:
        px = keys.setdefault(path, pixels_key(Image.open(path)))
        box = _drawn(json.loads(solution)[0]["bbox"])
        named.setdefault((px, problem.strip().lower()), set()).add(box)
        objects.setdefault(px, set()).add(box)
    return {"named": named, "objects": objects}


def _oracle(truth, hit_rate: float = 7 / 8, unparseable: set | None = None):
    def answer(px, question, n):
        expression = question.split("describes: ", 1)[1].split(". ", 1)[0].rstrip(".").strip().lower()
        if unparseable and expression in unparseable:
            return [None] * n
        rng = random.Random(f"{px}:{expression}")
        right = sorted(truth["named"][(px, expression)])
        wrong = sorted(truth["objects"][px] - set(right)) or right
        return [[("", rng.choice(right if i < round(hit_rate * n) else wrong))] for i in range(n)]

    return answer


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("label-testbed")
    bed = write_testbed(root, SPEC)
    catalog = str(root / "catalog.duckdb")
    for kind, path, images in bed.sources():
        ingest_file(catalog, str(path), make_reader(kind), images=ImageCheck([images]))
    recipe = load_recipe("none")
    evaluate_recipe(catalog, recipe)
    policy = ScriptedPolicy(_oracle(_truth(catalog)), name="oracle-7-of-8")
    summary = score_recipe(catalog, recipe, policy, ScorerConfig.model_validate({"sampling": {"n": K}}))
    done = label_quality.compute(catalog, summary.scorer_key)
    return bed, catalog, summary.scorer_key, done


def _planted(bed, catalog) -> dict[str, str]:
    """sample_id -> planted kind, for every wrong label: the noisy source's three kinds, and the broken boxes
    planted in both sources (degenerate, out of bounds), which are wrong labels too."""
    errors = {(e["source"], e["ref_id"]): e["kind"] for e in json.loads(bed.label_errors.read_text())}
    con = duckdb.connect(catalog, read_only=True)
    rows = con.execute("SELECT sample_id, source, ref_id FROM samples WHERE split LIKE '%train'").fetchall()
    con.close()
    default = load_recipe("default")
    evaluate_recipe(catalog, default)
    broken = flagged_ids(catalog, default.hash, "degenerate_box") | flagged_ids(catalog, default.hash,
                                                                                "box_out_of_bounds")  # fmt: skip
    return {sid: errors.get((src, ref), "broken box") for sid, src, ref in rows if (src, ref) in errors or
            sid in broken}  # fmt: skip


def _twins(catalog) -> set[str]:
    """Samples whose expression names two drawn objects of their picture (the planted twins)."""
    named = _truth(catalog)["named"]
    con = duckdb.connect(str(catalog), read_only=True)
    rows = con.execute("SELECT sample_id, image_path, problem FROM samples").fetchall()
    con.close()
    keys = {path: pixels_key(Image.open(path)) for path in {p for _, p, _ in rows}}
    return {sid for sid, path, problem in rows if len(named.get((keys[path], problem.strip().lower()), ())) > 1}


def test_planted_wrong_labels_are_flagged_and_clean_labels_with_the_same_agreement_are_not(scored):
    bed, catalog, key, done = scored
    planted = _planted(bed, catalog)
    kinds = set(planted.values())
    assert kinds == {"wrong_referent", "inaccurate_box", "swapped_expression", "broken box"}, bed.planted
    con = duckdb.connect(catalog, read_only=True)
    rows = con.execute(
        "SELECT q.sample_id, q.score, q.agreement, s.source FROM label_quality q JOIN samples s USING (sample_id) "
        "WHERE q.scorer_key = ? AND s.split LIKE '%train'", [key]).fetchall()  # fmt: skip
    con.close()
    assert done["unknown"] == 0 and done["computed"] >= len(rows) > 0
    suspect = label_quality.SUSPECT  # suspect_label's min_score
    for sid, score, _, _ in rows:
        if sid in planted:
            assert score >= suspect, (planted[sid], score)
    # clean labels the answers agree on as strongly as on the planted ones: never flagged. (An expression that
    # fits two objects, a planted twin, is not a clean label: the policy's consensus may be the other twin.)
    twins = _twins(catalog)
    strong = min(agree for sid, _, agree, _ in rows if sid in planted)
    clean = [(score, agree) for sid, score, agree, _ in rows if sid not in set(planted) | twins and agree >= strong]
    assert len(clean) > 100 and all(score < suspect for score, _ in clean)
    # the rule: strict drops them, default flags them, nothing else of the noisy source
    strict = load_recipe("strict")
    evaluate_recipe(catalog, strict)
    dropped = flagged_ids(catalog, strict.hash, "suspect_label")
    assert set(planted) <= dropped and not (dropped - set(planted) - twins)
    # the quality stage's report shows the top suspects (the flows publish every PNG of a report as an artifact)
    from flows import stages

    report = stages.quality(catalog, load_recipe("default"))
    with Image.open(report.files["suspects"]) as sheet:
        assert sheet.size == (6 * 264 + 8, 30 + 4 * (256 + 34 + 8))  # 24 cards: 6 columns, 4 rows


def test_unknown_when_the_answers_do_not_parse(tmp_path, scored):
    bed, catalog, _, _ = scored
    copy = tmp_path / "catalog.duckdb"
    copy.write_bytes(open(catalog, "rb").read())
    con = duckdb.connect(str(copy), read_only=True)
    expressions = {p.strip().lower() for (p,) in con.execute(
        "SELECT problem FROM samples WHERE source = 'shapes' AND split LIKE '%train' LIMIT 5").fetchall()}  # fmt: skip
    con.close()
    policy = ScriptedPolicy(_oracle(_truth(copy), unparseable=expressions), name="mumbles")
    recipe = load_recipe("none")
    evaluate_recipe(str(copy), recipe)  # label quality moved the catalog on since its flags
    summary = score_recipe(str(copy), recipe, policy, ScorerConfig.model_validate({"sampling": {"n": K}}))
    done = label_quality.compute(str(copy), summary.scorer_key)
    con = duckdb.connect(str(copy), read_only=True)
    unknown = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE q.score IS NULL AND q.parsed = 0) FROM label_quality q "
        "JOIN samples s USING (sample_id) WHERE q.scorer_key = ? AND list_contains(?, lower(trim(s.problem)))",
        [summary.scorer_key, sorted(expressions)]).fetchone()  # fmt: skip
    con.close()
    assert unknown[0] >= 5 and unknown[0] == unknown[1] and done["unknown"] == unknown[0]
    strict = load_recipe("strict")
    evaluate_recipe(str(copy), strict)
    con = duckdb.connect(str(copy), read_only=True)
    fired = con.execute(
        "SELECT count(*) FROM quality_flags f JOIN label_quality q USING (sample_id) WHERE f.recipe_hash = ? AND "
        "f.rule = 'suspect_label' AND q.scorer_key = ? AND q.score IS NULL",
        [strict.hash, summary.scorer_key],
    ).fetchone()[0]
    con.close()
    assert fired == 0  # unknown is never "wrong"


def test_ovd_bad_location_and_overlooked_object_on_a_scripted_engine(tmp_path):
    images = tmp_path / "images"
    write_jpeg(images / "a.jpg", 200, 200, "ovd-label")
    question = "Please carefully check the image and detect the following objects: ['cat', 'dog']."
    truth = [{"bbox_2d": [10, 10, 60, 60], "label": "cat"}, {"bbox_2d": [100, 100, 160, 160], "label": "dog"}]
    record = {"image": "a.jpg", "width": 200, "height": 200, "conversations": [
        {"from": "human", "value": "<image>" + question},
        {"from": "gpt", "value": "```json\n" + json.dumps(truth) + "\n```"}]}  # fmt: skip
    (tmp_path / "ovd.jsonl").write_text(json.dumps(record) + "\n")
    catalog = str(tmp_path / "catalog.duckdb")
    ingest_file(catalog, str(tmp_path / "ovd.jsonl"), make_reader("jsonl"), images=ImageCheck([images]))

    def answer(px, q, n):  # the cat where it is; the dog 30 px right (IoU 0.33); a second cat, 6 times in 8
        cat, dog, other = ("cat", (10, 10, 60, 60)), ("dog", (130, 100, 190, 160)), ("cat", (10, 120, 60, 180))
        return [[cat, dog, other] if i < 6 else [cat, dog] for i in range(n)]

    recipe = load_recipe("none")
    evaluate_recipe(catalog, recipe)
    summary = score_recipe(catalog, recipe, ScriptedPolicy(answer, name="ovd"), ScorerConfig.model_validate(
        {"sampling": {"n": K}}))  # fmt: skip
    label_quality.compute(catalog, summary.scorer_key)
    con = duckdb.connect(catalog, read_only=True)
    boxes = con.execute("SELECT box_index, label, kind, hits, round(x1), round(y1) FROM label_quality_boxes "
                        "ORDER BY box_index NULLS LAST").fetchall()  # fmt: skip
    score, worst = con.execute("SELECT score, worst FROM label_quality").fetchone()
    con.close()
    assert boxes[0][:3] == (0, "cat", "ok") and boxes[0][3] == 1.0
    assert boxes[1][:3] == (1, "dog", "bad_location") and boxes[1][3] == 0.0
    assert boxes[2][:3] == (None, "cat", "overlooked") and boxes[2][3] == pytest.approx(0.75)
    assert boxes[2][4:] == (10.0, 120.0) and len(boxes) == 3
    assert worst == "bad_location" and score == pytest.approx(1.0)


@pytest.mark.slow  # a real Chromium
def test_review_page_in_chromium_and_the_coco_files_in_pycocotools(scored, tmp_path, capsys, monkeypatch):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from helpers import vlmr1_in_process
    from kit.browser import load

    bed, catalog, key, done = scored
    out = tmp_path / "review"
    code, stdout, stderr = vlmr1_in_process(capsys, monkeypatch, "review", "suspect_label", "--catalog", catalog,
                                            "--out", out, "--scorer", key, "--limit", "30")  # fmt: skip
    assert code == 0, stderr
    assert "review.html" in stdout and "review.png" in stdout and "labels.json" in stdout
    loaded = load(out / "review.html", screenshot=tmp_path / "review-shot.png",
                  evaluate={"pages": "document.querySelectorAll('section.page').length",
                            "shown": "[...document.querySelectorAll('section.page')].filter(p => !p.hidden).length",
                            "cards": "document.querySelectorAll('.card').length"})  # fmt: skip
    assert loaded.errors == []
    assert loaded.values == {"pages": 2, "shown": 1, "cards": 30}  # worst 30 of the suspects, 24 per page
    assert len(loaded.images) == 30 and all(i["ok"] and i["w"] == 256 for i in loaded.images)
    with Image.open(out / "review.png") as sheet:
        assert sheet.width > 1000 and sheet.height > 500

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(out / "coco" / "labels.json"))
        dt = gt.loadRes(str(out / "coco" / "rollouts.json"))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    con = duckdb.connect(catalog, read_only=True)
    scored_samples, parsed, hits = con.execute(
        "SELECT count(*), sum(parsed), sum(support * k) FROM label_quality WHERE scorer_key = ?", [key]
    ).fetchone()
    con.close()
    assert len(gt.getImgIds()) == scored_samples and len(gt.getAnnIds()) == scored_samples  # one label per REC
    assert len(dt.getAnnIds()) == parsed and ev.stats[1] > 0
    # in the right frame: pycocotools' own IoUs find the answers that hit their label, as label quality counted
    found = sum(int((iou >= 0.5).sum()) for iou in ev.ious.values() if len(iou))
    assert found == round(hits)


def test_review_refuses_a_query_that_is_not_one_predicate(scored, capsys, monkeypatch):
    from helpers import vlmr1_in_process

    _, catalog, _, _ = scored
    code, _, stderr = vlmr1_in_process(capsys, monkeypatch, "review", "--catalog", catalog, "--where",
                                       "label_score > 0.3) OR (SELECT 1 FROM read_csv('/etc/passwd')")  # fmt: skip
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: ")
