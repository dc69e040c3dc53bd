"""Do the policy's own rollouts find wrong labels? Label quality against cleanlab on the same rollouts.

The testbed's noisy source gets wrong labels at RefCOCO's audited rate (14% of training refs; Ref-L4): a wrong
referent, an inaccurate box (IoU 0.3-0.6 with the true one) and a swapped expression, a third each. Two tiny
Qwen2.5-VL policies, warm-started offline on other scenes for 1000 and 3000 steps (their rollouts hit clean labels
about 29% and 60% of the time; a policy at 90% takes several times longer to warm-start on 2 cores), each give
k = 8 rollouts per training ref through the real scoring stage (hf engine on CPU). Ranked on the same rollouts, per
error type and overall, against the clean labels the ``default`` recipe keeps:

- ``label quality``: this project's score (``curation.difficulty.label_evidence``), and the variant it was chosen
  over (also weighted by ``1 - support``, the share of answers that miss the label);
- ``cleanlab``: ``cleanlab.object_detection.rank.get_label_quality_scores`` with the rollouts as predictions
  (one class; a box's confidence is the share of answers that agree with it, as in the COCO export);
- ``suspect_annotation``: the difficulty stage's flag (never passes although well formed);
- ``1 - pass rate``: the continuous signal behind it (``never_learned`` is the same signal read from training
  visits, which a scoring run has none of);
- ``random``.

Printed: AUROC, precision at recall 0.5 and 0.8, recall at precision 0.9.

    .venv/bin/python benchmarks/label_errors.py [--out bench-out/label-errors] [--images 300]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KINDS = ("wrong_referent", "inaccurate_box", "swapped_expression")
POLICIES = {"1000-step": 1000, "3000-step": 3000}  # warm-start steps (1000: the testbed ablation's start model)


def build(out: Path, images: int) -> tuple[str, object]:
    """The testbed with 14% wrong labels, its noisy source ingested into a catalog of its own."""
    from curation.demo.testbed import NOISY, TestbedSpec, write_testbed
    from curation.ingest import make_reader
    from curation.ingest.images import ImageCheck
    from curation.ingest.store import ingest_file

    spec = TestbedSpec(train_images=images, eval_images=20, wrong_box=0.047, inaccurate_box=0.047,
                       swapped_expression=0.046, seed=11)  # fmt: skip
    bed = write_testbed(out / "testbed", spec)
    catalog = out / "catalog.duckdb"
    if not catalog.exists():
        for kind, path, root in bed.sources():
            if NOISY in str(path):
                ingest_file(str(catalog), str(path), make_reader(kind), images=ImageCheck([root]))
    return str(catalog), bed


def score(catalog: str, model: Path, name: str) -> str:
    """k = 8 rollouts per training ref through the scoring stage (label quality computed by it)."""
    from curation.difficulty.config import ScorerConfig
    from curation.quality.recipe import load_recipe
    from flows import stages

    config = ScorerConfig.model_validate(
        {"engine": {"model": str(model)}, "sampling": {"n": 8, "max_new_tokens": 32}, "partition_size": 256}
    )
    t0 = time.perf_counter()
    report = stages.score(catalog, load_recipe("none"), config)
    print(f"{name}: scored {report.counts['scored now']} refs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return report.counts["scorer"]


def table(catalog: str, bed, key: str) -> dict:
    """Per training sample kept by ``default`` (its other rules applied): truth and every method's suspicion."""
    import duckdb

    from curation.quality.apply import evaluate_recipe, flagged_ids
    from curation.quality.recipe import load_recipe

    default = load_recipe("default")
    evaluate_recipe(catalog, default)
    dropped = flagged_ids(catalog, default.hash) - flagged_ids(catalog, default.hash, "suspect_label")
    planted = {e["ref_id"]: e["kind"] for e in json.loads(bed.label_errors.read_text())}
    con = duckdb.connect(catalog, read_only=True)
    rows = con.execute(
        """SELECT s.sample_id, s.ref_id, s.width, s.height, s.solution, q.score, d.pass_rate, d.suspect_annotation,
            q.support, q.consensus_iou, q.agreement FROM samples s JOIN label_quality q USING (sample_id)
            JOIN difficulty d USING (sample_id, scorer_key)
        WHERE q.scorer_key = ? ORDER BY s.sample_id""", [key]).fetchall()  # fmt: skip
    con.close()
    rows = [r for r in rows if r[0] not in dropped]
    kinds = [planted.get(r[1], "clean") for r in rows]
    return {
        "ids": [r[0] for r in rows],
        "kind": np.array(kinds),
        "label quality": np.array([-1.0 if r[5] is None else r[5] for r in rows]),
        # the variant the score was chosen against: also weighted by the share of answers that miss the label
        "label quality x (1 - support)": np.array([-1.0 if r[5] is None else r[5] * (1 - r[8]) for r in rows]),
        "cleanlab": 1.0 - cleanlab_scores(catalog, key, [r[0] for r in rows]),
        "suspect_annotation": np.array([float(r[7]) for r in rows]),
        "1 - pass rate": np.array([1.0 - r[6] for r in rows]),
        "random": np.random.default_rng(0).random(len(rows)),
        "clean acc@0.5": float(np.mean([r[8] for r, k in zip(rows, kinds) if k == "clean" and r[8] is not None])),
        "clean consensus acc@0.5": float(np.mean([(r[9] or 0) >= 0.5 for r, k in zip(rows, kinds) if k == "clean"])),
        "unknown": sum(r[5] is None for r in rows),
    }


def cleanlab_scores(catalog: str, key: str, ids: list[str]) -> np.ndarray:
    """cleanlab's object-detection label quality per sample (lower: worse), the rollouts as predictions."""
    from cleanlab.object_detection.rank import get_label_quality_scores

    from curation.review.coco import answer_confidences
    from curation.review.items import gather

    labels, predictions = [], []
    for item in gather(catalog, [(sid, "") for sid in ids], key):
        answers = [a for a in item.answers if a]
        conf = answer_confidences(answers)
        dets = [[*d.bbox, c] for a, cs in zip(answers, conf) for d, c in zip(a, cs)]
        labels.append({"bboxes": np.array([item.labels[0].bbox], dtype=np.float32), "labels": np.array([0])})
        predictions.append([np.array(dets, dtype=np.float32).reshape(-1, 5)])
    return np.asarray(get_label_quality_scores(labels, predictions))


def metrics(y: np.ndarray, s: np.ndarray) -> dict:
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    precision, recall, _ = precision_recall_curve(y, s)

    def p_at(r: float) -> float:
        return float(precision[recall >= r].max())

    return {"auroc": float(roc_auc_score(y, s)), "p@r0.5": p_at(0.5), "p@r0.8": p_at(0.8),
            "r@p0.9": float(recall[precision >= 0.9].max()) if (precision >= 0.9).any() else 0.0}  # fmt: skip


METHODS = ("label quality", "label quality x (1 - support)", "cleanlab", "suspect_annotation", "1 - pass rate",
           "random")  # fmt: skip


def evaluate(t: dict) -> list[dict]:
    out = []
    for kind in ("all", *KINDS):
        keep = (t["kind"] == "clean") | ((t["kind"] != "clean") if kind == "all" else (t["kind"] == kind))
        y = (t["kind"][keep] != "clean").astype(int)
        for m in METHODS:
            out.append({"errors": kind, "method": m, "n_errors": int(y.sum()), "n_clean": int((1 - y).sum()),
                        **metrics(y, t[m][keep])})  # fmt: skip
    return out


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from curation.demo.testbed_model import build_testbed_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-out/label-errors"))
    ap.add_argument("--images", type=int, default=300)
    args = ap.parse_args()
    catalog, bed = build(args.out.resolve(), args.images)
    console, results = Console(width=150), {}
    for name, steps in POLICIES.items():
        model = build_testbed_model(args.out / f"policy-{name}", steps=steps)
        t = table(catalog, bed, score(catalog, model, name))
        rows = evaluate(t)
        results[name] = {"clean_acc50": t["clean acc@0.5"], "consensus_acc50": t["clean consensus acc@0.5"],
                         "unknown": t["unknown"], "rows": rows}  # fmt: skip
        tab = Table(title=f"{name} policy ({steps} warm-start steps): on clean labels, Acc@0.5 of its rollouts "
                          f"{t['clean acc@0.5']:.2f}, of their consensus {t['clean consensus acc@0.5']:.2f}; "
                          f"{t['unknown']} unknown")  # fmt: skip
        for col in ("errors", "method", "errors/clean", "AUROC", "P@R0.5", "P@R0.8", "R@P0.9"):
            tab.add_column(col)
        for r in rows:
            tab.add_row(r["errors"], r["method"], f"{r['n_errors']}/{r['n_clean']}", f"{r['auroc']:.3f}",
                        f"{r['p@r0.5']:.3f}", f"{r['p@r0.8']:.3f}", f"{r['r@p0.9']:.3f}")  # fmt: skip
        console.print(tab)
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
