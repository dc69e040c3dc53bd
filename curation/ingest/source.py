"""One annotation file to ingest and how: the unit both faces hand the ingest stage."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curation.ray_cluster import RaySpec


class SourceSpec(BaseModel):
    """One file, its reader kind and options (the reader's own fields, ``curation.ingest.READERS[kind]``), and
    the image roots its samples' images are probed under."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["coco", "refcoco", "d3", "jsonl"]
    path: str
    images: list[str] = Field(default_factory=list)
    verify_images: bool = False
    keep_bad_images: bool = False
    options: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _options_fit_reader(self) -> SourceSpec:
        self.reader()
        return self

    def reader(self):
        from curation.ingest import make_reader

        return make_reader(self.kind, **self.options)

    def image_check(self, ray: RaySpec | None = None):
        from curation.ingest.images import ImageCheck

        roots = [Path(r) for r in self.images]
        reject = not self.keep_bad_images
        return ImageCheck(roots, verify=self.verify_images, reject=reject, ray=ray) if roots else None
