"""The reader shape every source format follows (datatrove's ``BaseReader`` -> ``JsonlReader`` idea).

A reader is a small frozen pydantic model: its options are its fields,
validated once (an unknown or mistyped option is one line naming it), and
``stage`` fills the staging tables for one file. Everything else (the
transaction, image checks, rejects, idempotence) belongs to the store,
``ingest_file``. A file's identity is computed from the reader's own fields
after ``for_file`` has filled in the defaults that depend on the file, so
the identity cannot drift from the options the rows were read with.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import duckdb
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from curation.ingest.images import ImageCheck


class Reader(BaseModel):
    """One source format. Subclasses set ``kind`` and implement ``stage``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str]
    expects: ClassVar[str] = ""  # what a file of this format holds: the hint when a file gives no sample

    def for_file(self, path: Path) -> Reader:
        """This reader with every file-dependent default resolved (the identity is computed from the result)."""
        return self

    def source_name(self) -> str:
        """The ``source`` the samples are stamped with (called on the ``for_file`` result)."""
        return self.source  # every reader has a ``source`` field

    def companions(self) -> list[Path]:
        """Files read along with the main one: their bytes are part of its identity."""
        return []

    def identity(self) -> dict:
        """The options that make a file's rows what they are: recorded in ``sources.options``."""
        return self.model_dump(mode="json")

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path, content_sha256: str, images: ImageCheck | None) -> int:
        """Fill the staging tables from one file; return its record count."""
        raise NotImplementedError
