"""``vlmr1 ingest <kind>``: one subcommand per reader, its options generated from the reader's pydantic fields, so
the CLI, the flows' ``SourceSpec`` and the readers cannot drift."""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Optional

import typer

from curation.ingest import READERS
from flows.cli.options import CatalogOpt, RayAddressOpt, RayOpt, ray_spec, show

app = typer.Typer(help="Ingest annotations into the catalog.", no_args_is_help=True)

ImagesOpt = typer.Option(
    None, "--images", help="Image root; repeat for several. Images are probed (size, hashes); bad ones become rejects."
)
VerifyOpt = typer.Option(False, "--verify-images", help="Fully decode each image (finds truncated files; slower).")
KeepOpt = typer.Option(
    False,
    "--keep-bad-images",
    help="Keep samples whose image is bad (the quality rules flag them) instead of rejecting.",
)


def _ingest(
    kind: str,
    paths: list[Path],
    catalog: Path,
    images: Optional[list[Path]],
    verify_images: bool,
    keep_bad_images: bool,
    ray: bool,
    ray_address: Optional[str],
    options: dict,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from curation.ingest.source import SourceSpec
    from flows import stages

    roots = [str(p) for p in images or []]
    sources = [SourceSpec(kind=kind, path=str(p), images=roots, verify_images=verify_images,
                          keep_bad_images=keep_bad_images, options=options) for p in paths]  # fmt: skip
    bar = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*bar, transient=True) as progress:
        task = progress.add_task("ingesting", total=len(sources))

        def on_file(n: int, path: str) -> None:
            progress.update(task, completed=n, description=f"ingesting {Path(path).name}")

        report = stages.ingest(catalog, sources, ray_spec(ray, ray_address), on_file=on_file)
    show(report)


def _option_type(annotation):
    """``X | None`` as typer reads it (``Optional[X]``)."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) and type(None) in args:
        return Optional[next(a for a in args if a is not type(None))]
    return annotation


def _reader_options(reader) -> list[inspect.Parameter]:
    """One ``--option`` per field a user sets (a single-valued Literal and fields marked ``option: False`` are not
    options)."""
    params = []
    for name, field in reader.model_fields.items():
        extra = field.json_schema_extra or {}
        fixed = typing.get_origin(field.annotation) is typing.Literal and len(typing.get_args(field.annotation)) == 1
        if extra.get("option", True) is False or fixed:
            continue
        option = typer.Option(field.default, f"--{name.replace('_', '-')}", help=field.description or "")
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=_option_type(field.annotation)))  # fmt: skip
    return params


def _command(kind: str, reader) -> None:
    common = [
        ("paths", list[Path], typer.Argument(..., exists=True, dir_okay=False, help=f"Files: {reader.expects}.")),
        ("catalog", Path, CatalogOpt),
        ("images", Optional[list[Path]], ImagesOpt),
        ("verify_images", bool, VerifyOpt),
        ("keep_bad_images", bool, KeepOpt),
        ("ray", bool, RayOpt),
        ("ray_address", Optional[str], RayAddressOpt),
    ]
    params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=t) for n, t, d in common]
    own = _reader_options(reader)

    def command(**kw) -> None:
        options = {p.name: kw.pop(p.name) for p in own}
        _ingest(kind, options=options, **kw)

    command.__signature__ = inspect.Signature(params + own)
    command.__annotations__ = {p.name: p.annotation for p in params + own}
    command.__doc__ = reader.__doc__
    command.__name__ = f"ingest_{kind}"
    app.command(kind)(command)


for _kind, _reader in READERS.items():
    _command(_kind, _reader)
