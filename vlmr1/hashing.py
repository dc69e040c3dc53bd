"""The two hashes of the project: of a file (ingest identities, shard checksums, model identities) and of content
(recipe, scorer and cache keys: canonical JSON, so key order and whitespace never change a key)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def content_hash(value: object, *, full: bool = False, length: int = 16) -> str:
    """sha256 of ``value``: a string as its UTF-8 bytes, anything else as canonical JSON; ``length`` hex digits."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return digest if full else digest[:length]
