"""What a file looks like from its first bytes, so a file handed to the wrong reader is named as such ("use `vlmr1
ingest coco`") instead of failing inside the reader ("instances.json: missing", "no sample ingested")."""

from __future__ import annotations

import json
from pathlib import Path

HEAD_BYTES = 65536
# a guess -> the reader kinds that read it, the one to advise first
READS = {"a pickle": ("refcoco",), "a COCO instances json": ("coco", "d3"), "VLM-R1 jsonl": ("jsonl",)}


def guess(path: Path) -> str | None:
    """A confident guess at the file's format from its head, or None (then the reader decides)."""
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    if head[:1] == b"\x80" or head[:2] == b"(l" or head[:2] == b"(d":  # pickle protocol 2+, or 0's list/dict
        return "a pickle"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] != b"{":
        return None
    first = text.split(b"\n", 1)[0]
    try:
        line = json.loads(first)
    except ValueError:
        line = None
    if isinstance(line, dict) and "conversations" in line and len(first) < len(text):
        return "VLM-R1 jsonl"
    if all(f'"{key}"'.encode() in text for key in ("images", "annotations", "categories")):
        return "a COCO instances json"
    return None


def wrong_reader(path: Path, kind: str) -> str | None:
    """One line when the file is confidently something ``kind`` does not read, naming the command that does."""
    what = guess(path)
    if what is None or kind in READS[what]:
        return None
    return f"{path}: this is {what}, not what `vlmr1 ingest {kind}` reads; use `vlmr1 ingest {READS[what][0]}`"
