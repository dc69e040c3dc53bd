"""Export fidelity on any shard set (a check, not a timing): EasyR1 and VLM-R1 loading and scoring, row by row.

    python benchmarks/export_fidelity.py SHARDS      # e.g. demo-out/flow/run/shards/train after `vlmr1 demo`

Uses the trainer-contract emulations of ``tests/test_curation/test_exports.py`` (EasyR1's RLHFDataset with its
example config; VLM-R1's grpo_jsonl loader) and prints: rows loaded, perfect answers scoring 1.0, shifted REC
answers scoring exactly their IoU, and the VLM-R1 files combined with a released-style line.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _answer(box) -> str:
    return f'<think>t</think><answer>{{"bbox_2d": {box}}}</answer>'


def check_easyr1(shards: str, embed: bool) -> str:
    from test_exports import _easyr1_rows, _iou
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    from curation.exports.easyr1 import to_easyr1
    from vlmr1.easyr1_reward import compute_score

    rows = _easyr1_rows(to_easyr1(shards, Path(tempfile.mkdtemp()), embed=embed), embed)
    perfect = shifted = n_rec = 0
    for _, (image,), answer in rows:
        t = json.loads(answer)
        fam = t["family"]
        h2, w2 = smart_resize(image.height, image.width, 28, fam["min_pixels"], fam["max_pixels"])
        sx, sy = w2 / t["width"], h2 / t["height"]
        seen = [[b["bbox"][0] * sx, b["bbox"][1] * sy, b["bbox"][2] * sx, b["bbox"][3] * sy] for b in t["solution"]]
        if t["task"] == "rec":
            n_rec, b = n_rec + 1, t["solution"][0]["bbox"]
            moved = [seen[0][0] + 7, seen[0][1], seen[0][2] + 7, seen[0][3]]
            inputs = [{"response": _answer(x), "response_length": 1, "ground_truth": answer} for x in (seen[0], moved)]
            p, q = compute_score(inputs)
            shifted += abs(q["accuracy"] - _iou(b, [b[0] + 7 / sx, b[1], b[2] + 7 / sx, b[3]])) < 1e-9
        else:
            items = [{"bbox_2d": x, "label": y["label"]} for x, y in zip(seen, t["solution"])]
            body = "```json\n" + json.dumps(items) + "\n```" if items else "None"
            response = f"<think>t</think><answer>{body}</answer>"
            [p] = compute_score([{"response": response, "response_length": 1, "ground_truth": answer}])
        perfect += abs(p["accuracy"] - 1) < 1e-9
    return (
        f"EasyR1 (embed={embed}): {len(rows)} rows loaded, REC {n_rec} / OVD {len(rows) - n_rec}; perfect answers "
        f"scoring 1.0: {perfect}/{len(rows)}; shifted REC answers scoring exactly their IoU: {shifted}/{n_rec}"
    )


def check_vlmr1(shards: str) -> str:
    from test_exports import RELEASED, _vlmr1_load

    from curation.exports.vlmr1_jsonl import to_vlmr1_jsonl

    files = to_vlmr1_jsonl(shards, Path(tempfile.mkdtemp()))
    _, ds = _vlmr1_load(files, [RELEASED])
    per_file = ", ".join(f"{f.task} {f.lines}" for f in files)
    return f"VLM-R1: files {per_file}; with a released line: {len(ds)} rows, id {ds.features['id'].dtype}"


def main() -> None:
    sys.path += [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "test_curation")]
    shards = sys.argv[1]
    for line in (check_easyr1(shards, False), check_easyr1(shards, True), check_vlmr1(shards)):
        print(line)


if __name__ == "__main__":
    main()
