"""Content-keyed task caching: a Prefect ``CachePolicy`` whose key is the content keys of the task's inputs.

An input with ``content_key()`` (catalog snapshot, recipe hash, file sha256) contributes that; a pydantic model
its JSON; anything else its JSON. Nothing is assembled by hand at the call site.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect.cache_policies import CachePolicy
from pydantic import BaseModel

from vlmr1.hashing import content_hash


def content_key(value: Any) -> Any:
    if hasattr(value, "content_key"):
        return value.content_key()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [content_key(v) for v in value]
    return value


@dataclass
class ContentKey(CachePolicy):
    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs) -> str:
        parts = {name: content_key(value) for name, value in sorted((inputs or {}).items())}
        return f"{task_ctx.task.name}-{content_hash(parts, length=24)}"


CONTENT = ContentKey()
