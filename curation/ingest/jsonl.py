"""VLM-R1 jsonl (and VLM-R1's released ``.json`` arrays) -> REC / OVD samples.

A line: ``{"id"?, "image": str | [str], "conversations": [{"from": "human", "value": "<image>question"},
{"from": "gpt", "value": answer}], "width"?, "height"?}``. A file whose first character is ``[`` is a JSON array
(VLM-R1's ``rec_jsons_processed/*.json``), streamed item by item with ijson; an item is either such a record or
the released REC shape ``{"image", "problem", "solution": [x1, y1, x2, y2], "id"?, "width"?, "height"?}``.

The task follows from the answer: a JSON list of 4 numbers is REC (original pixels); a ```json fenced (or bare)
list of ``{"bbox_2d" | "bbox", "label"}`` or the word None is OVD. Ground truth is parsed strictly (no JSON
repair: a broken label is a reject, not a guess).

The question is matched against VLM-R1's REC/OVD question texts to recover the expression or the phrase list; an
unrecognised question is kept whole as the problem. Images are resolved against the image roots; a record without
width/height takes the probed size, so a file needs ``--images`` unless its records carry sizes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import ClassVar, Iterator

import duckdb
import ijson
from pydantic import Field

from curation.ingest.images import ImageCheck, cached_probes
from curation.ingest.reader import Reader
from curation.ingest.store import Reject, Staged, stage_rows
from vlmr1.answers import is_none_answer, strip_fence
from vlmr1.records import Target, make_sample_id, solution_json, validate_box

_REC = re.compile(
    r"^Please provide the bounding box coordinate of the region this sentence describes: (.+?)\.?$", re.S
)
_OVD_PREFIX = "detect the following objects: ["


def _ovd_phrases(question: str) -> str | None:
    """The phrase list between the OVD prefix and the next "].", found in linear time (a lazy regex over a
    0.5 MB line of repeated prefixes took 23 s)."""
    start = question.find(_OVD_PREFIX)
    end = question.find("].", start + len(_OVD_PREFIX)) if start >= 0 else -1
    return question[start + len(_OVD_PREFIX) : end].strip() if end >= 0 else None


class RecordError(ValueError):
    """One line is unusable; the message is the reject reason ("what: detail")."""


def _question(conversations) -> str:
    if not isinstance(conversations, list) or len(conversations) < 2:
        raise RecordError("conversations missing: need a human turn and a gpt turn")
    human = next((t for t in conversations if isinstance(t, dict) and t.get("from") == "human"), None)
    if human is None or not isinstance(human.get("value"), str):
        raise RecordError("conversations missing: no human turn with text")
    return human["value"].replace("<image>", "").strip()


def _answer(conversations) -> str:
    gpt = next((t for t in conversations if isinstance(t, dict) and t.get("from") == "gpt"), None)
    if gpt is None or not isinstance(gpt.get("value"), str):
        raise RecordError("conversations missing: no gpt turn with an answer")
    return gpt["value"].strip()


def parse_ground_truth(answer: str, where: str) -> tuple[str, tuple[Target, ...] | tuple[float, ...]]:
    """("rec", box) or ("ovd", targets), strictly; RecordError otherwise."""
    if is_none_answer(answer) or is_none_answer(strip_fence(answer)):
        return "ovd", ()
    try:
        value = json.loads(strip_fence(answer).strip())
    except ValueError:
        raise RecordError(f"answer unreadable: not JSON and not None: {answer[:80]!r}") from None
    if isinstance(value, list) and len(value) == 4 and all(type(v) in (int, float) for v in value):
        try:
            return "rec", validate_box(value, where)
        except ValueError as exc:
            raise RecordError(f"answer box invalid: {exc}") from None
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        targets = []
        for k, item in enumerate(value):
            label, box = item.get("label"), item.get("bbox_2d", item.get("bbox"))
            if not isinstance(label, str) or not label.strip():
                raise RecordError(f"answer box invalid: item {k} has no label")
            try:
                targets.append(Target(label.strip(), validate_box(box, f"{where} item {k}")))
            except ValueError as exc:
                raise RecordError(f"answer box invalid: {exc}") from None
        return "ovd", tuple(targets)
    raise RecordError(f"answer unreadable: neither a 4-number box nor a list of detections: {answer[:80]!r}")


def parse_line(
    line: str, index: int, *, source: str, split: str, stem: str, content_sha256: str | None = None
) -> dict:
    """One jsonl line -> a sample row (width/height may be None until probed)."""
    try:
        rec = json.loads(line)
    except RecursionError:
        raise RecordError("line is nested too deeply to be a VLM-R1 record") from None
    except ValueError as exc:
        raise RecordError(f"line is not JSON: {exc}") from None
    return parse_record(rec, index, "lines", source=source, split=split, stem=stem, content_sha256=content_sha256)


def _conversations(rec: dict) -> list:
    """The record's conversations; the released REC shape (problem + a 4-number solution) is read as one."""
    if "conversations" in rec or "problem" not in rec:
        return rec.get("conversations")
    problem, solution = rec["problem"], rec.get("solution")
    if not isinstance(problem, str):
        raise RecordError("problem missing: the record's problem is not text")
    if isinstance(solution, str):
        answer = re.sub(r"</?answer>", "", solution)
    elif isinstance(solution, list):
        answer = json.dumps(solution)
    else:
        raise RecordError("solution missing: expected a 4-number box or an <answer> text")
    return [{"from": "human", "value": problem}, {"from": "gpt", "value": answer}]


def parse_record(
    rec, index: int, section: str, *, source: str, split: str, stem: str, content_sha256: str | None = None
) -> dict:
    """One decoded record (a jsonl line or an array item) -> a sample row (width/height may be None until probed)."""
    what = "line" if section == "lines" else "item"
    if not isinstance(rec, dict):
        raise RecordError(f"{what} is not a JSON object")
    conversations = _conversations(rec)
    image = rec.get("image")
    if isinstance(image, list):
        if len(image) != 1:
            raise RecordError(f"multi-image record: {len(image)} images (one image per sample is supported)")
        image = image[0]
    if not isinstance(image, str) or not image:
        raise RecordError("image missing: no image path in the record")
    question = _question(conversations)
    task, truth = parse_ground_truth(_answer(conversations), f"{what} {index + 1}")
    w, h = rec.get("width"), rec.get("height")
    if w is not None or h is not None:
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (w, h)):
            raise RecordError(f"width/height must be positive integers: {w!r}x{h!r}")
    key = rec.get("id", index)
    if task == "rec":
        m = _REC.match(question)
        problem = m.group(1).strip() if m else question
        targets = (Target(problem, truth),)
    else:
        problem = _ovd_phrases(question) or question
        targets = truth
    for text in (image, question, str(key)):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise RecordError("text is not valid UTF-8: it holds a lone surrogate") from None
    return {
        "sample_id": make_sample_id(source, (stem, key)),
        "source": source,
        "split": split,
        "task": task,
        "image_key": image,
        "width": w,
        "height": h,
        "problem": problem,
        "problem_raw": question,
        "solution": solution_json(targets),
        "image_id": None,
        "ann_id": None,
        "ref_id": None,
        "sent_id": None,
        "category_ids": None,
        "source_sha256": content_sha256,
        "rec_section": section,
        "rec_index": index,
        "rec_id": None if key == index and "id" not in rec else str(key),
    }


def _lines(path: Path) -> Iterator[tuple[int, object]]:
    """(index, the line) per non-blank line."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for index, line in enumerate(fh):
            if line.strip():
                yield index, line


def _items(path: Path) -> Iterator[tuple[int, object]]:
    """(index, the decoded item) per element of a top-level JSON array, streamed (a released
    REC file is 100+ MB); a break in the JSON ends the file with one reject naming the item it reached."""
    done = 0
    with open(path, "rb") as fh:
        try:
            for item in ijson.items(fh, "item", use_float=True):
                yield done, item
                done += 1
        except (ijson.JSONError, ValueError, RecursionError) as exc:
            raise _BrokenArray(done, str(exc)) from None


class _BrokenArray(Exception):
    def __init__(self, index: int, detail: str):
        self.index, self.detail = index, detail


def is_json_array(path: Path) -> bool:
    """Whether the file's first non-blank character opens a JSON array (VLM-R1's released .json files)."""
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] == b"["


def stage_jsonl(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    content_sha256: str,
    *,
    source: str,
    split: str,
    images: ImageCheck | None,
) -> int:
    staged = Staged()
    rows = []
    section = "items" if is_json_array(path) else "lines"
    records = _items(path) if section == "items" else _lines(path)
    common = {"source": source, "split": split, "stem": path.stem, "content_sha256": content_sha256}
    try:
        for index, raw in records:
            staged.n_records += 1
            try:
                if section == "lines":
                    rows.append(parse_line(raw, index, **common))
                else:
                    rows.append(parse_record(raw, index, section, **common))
            except RecordError as exc:
                staged.rejects.append(Reject(section, index, _record_id(raw), str(exc)))
    except _BrokenArray as exc:
        staged.rejects.append(Reject(section, exc.index, None, f"file unreadable: the JSON array breaks here: "
                                     f"{exc.detail[:200]}"))  # fmt: skip
    unsized = [r for r in rows if r["width"] is None]
    if unsized and images is not None:
        _size_from_probes(con, unsized, images)
    for r in rows:
        if r["width"] is None:
            # sized by its probe or not at all: a missing image is named as such by the image check
            if images is None:
                staged.rejects.append(
                    Reject(
                        r["rec_section"],
                        r["rec_index"],
                        r["rec_id"],
                        "image size unknown: the line has no width/height and no image root was given",
                    )
                )
                continue
            r["width"] = r["height"] = 0  # the image check rejects it with the probe's reason (in either mode)
        staged.samples.append(r)
    return stage_rows(con, staged)


def _size_from_probes(con: duckdb.DuckDBPyConnection, rows: list[dict], images: ImageCheck) -> None:
    """Width and height from the image probes (keys outside the roots stay unsized: the image check rejects them)."""
    paths = {r["image_key"]: images.resolve(r["image_key"]) for r in rows}
    todo = sorted({p for p in paths.values() if p is not None})
    cached_probes(con, todo, verify=images.verify, max_pixels=images.max_pixels, workers=images.workers)
    sql = "SELECT path, width, height FROM image_probes WHERE path IN (SELECT unnest(?))"
    sizes = {p: (w, h) for p, w, h in con.execute(sql, [todo]).fetchall()}
    for r in rows:
        r["width"], r["height"] = sizes.get(paths[r["image_key"]], (None, None))


def _record_id(raw) -> str | None:
    """A rejected record's ``id``, when it has one (decoded again only for rejects; the store makes it storable)."""
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except (ValueError, RecursionError):
        return None
    return str(value["id"]) if isinstance(value, dict) and "id" in value else None


class JsonlReader(Reader):
    """VLM-R1 jsonl: REC or OVD per line, task from the answer. Without an image check, lines need width/height."""

    kind: ClassVar[str] = "jsonl"
    expects: ClassVar[str] = (
        "VLM-R1 jsonl (one JSON object per line with image and conversations) or a JSON array of such records"
    )
    source: str | None = Field(None, description="Source name (default: the file's stem).")
    split: str = Field("train", description="Split of the samples.")

    def for_file(self, path: Path) -> JsonlReader:
        return self.model_copy(update={"source": self.source or path.stem})

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path, content_sha256: str, images=None) -> int:
        return stage_jsonl(con, path, content_sha256, source=self.source, split=self.split, images=images)
