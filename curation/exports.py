"""Exports of a shard set for other trainers: VLM-R1 jsonl and EasyR1/verl parquet. Both read the verified shards.

VLM-R1 (``grpo_jsonl.py``): one line per sample, ``image`` relative to an
image folder, ``conversations`` with the question after ``<image>`` and the
answer in original pixels (REC: a 4-number list; OVD: a fenced JSON list of
``{"bbox_2d", "label"}`` or ``None``). One jsonl per image root, so each file
pairs with one ``--image_folders`` entry. EasyR1/verl: ``problem`` (with
``<image>``), ``answer`` (the same answer text), ``images`` (list).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vlmr1.prompts import OVD_QUESTION, REC_QUESTION
from vlmr1.records import parse_solution
from vlmr1.shards import load_table


def question(task: str, problem: str) -> str:
    return (
        REC_QUESTION.format(expression=problem.strip().rstrip("."))
        if task == "rec"
        else OVD_QUESTION.format(categories=problem)
    )


def answer(task: str, solution: str) -> str:
    targets = parse_solution(solution)
    if task == "rec":
        return json.dumps(list(targets[0].bbox))  # exact: the export parses back to the same box
    if not targets:
        return "None"
    return "```json\n" + json.dumps([{"bbox_2d": list(t.bbox), "label": t.label} for t in targets]) + "\n```"


def _rows(shards: str | Path):
    table, manifest = load_table(shards)
    # relative paths as the shards store them (load_table resolved them; undo against the manifest's roots)
    roots = manifest["image_roots"]
    for r in table.to_pylist():
        image = r["image"]
        rel = image["path"]
        if r["image_root"] is not None:
            rel = rel[len(str(Path(roots[r["image_root"]]))) + 1 :]
        yield r, rel, manifest


def to_vlmr1_jsonl(shards: str | Path, out: str | Path) -> list[tuple[Path, str]]:
    """Write ``out/<name>[-<i>].jsonl`` (one per image root); return [(jsonl, image folder)] for --data_file_paths /
    --image_folders."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[int, list[str]] = {}
    manifest = None
    for r, rel, manifest in _rows(shards):  # noqa: B007 (the last manifest is used below)
        root = r["image_root"]
        if root is None:  # embedded: write the bytes out under out/images
            target = out / "images" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(r["image"]["bytes"])
            root = -1
        line = {
            "id": r["sample_id"],
            "image": rel,
            "conversations": [
                {"from": "human", "value": "<image>" + question(r["task"], r["problem"])},
                {"from": "gpt", "value": answer(r["task"], r["solution"])},
            ],
        }
        files.setdefault(root, []).append(json.dumps(line, ensure_ascii=False))
    result = []
    name = (manifest or {}).get("recipe", {}).get("name", "export")
    for i, (root, lines) in enumerate(sorted(files.items())):
        path = out / (f"{name}.jsonl" if len(files) == 1 else f"{name}-{i}.jsonl")
        path.write_text("\n".join(lines) + "\n")
        folder = str(out / "images") if root == -1 else manifest["image_roots"][root]
        result.append((path, folder))
    return result


def to_easyr1(shards: str | Path, out: str | Path) -> Path:
    """One parquet with EasyR1/verl columns: problem, answer, images (absolute paths, or bytes when embedded)."""
    table, _ = load_table(shards)
    rows = table.to_pylist()
    data = pa.table(
        {
            "problem": ["<image>" + question(r["task"], r["problem"]) for r in rows],
            "answer": [answer(r["task"], r["solution"]) for r in rows],
            "images": pa.array(
                [[r["image"]] for r in rows], pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
            ),
            "task": [r["task"] for r in rows],
            "sample_id": [r["sample_id"] for r in rows],
            "solution": [r["solution"] for r in rows],
        }
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, out)
    return out
