"""Exports of a verified shard set for other trainers, each loading unchanged in that trainer.

- ``vlmr1_jsonl``: VLM-R1's ``grpo_jsonl.py`` data (one jsonl per task and image folder, integer ids,
  the question texts of VLM-R1's released data) and a launch script per task.
- ``easyr1``: EasyR1's ``RLHFDataset`` parquet (``problem`` / ``answer`` / ``images``), a reward-function
  file for ``worker.reward.reward_function`` and the format prompt the labels were scored with.

Both read the shards through ``rows``: the manifest's image roots and each row's path relative to its root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vlmr1.prompts import OVD_QUESTION, REC_QUESTION
from vlmr1.records import answer_text, parse_solution
from vlmr1.shards import load_table, manifest_dialect


@dataclass(frozen=True)
class ExportRow:
    """One shard row as exporters need it: the row, its image path relative to its root, that root's index."""

    row: dict
    relative: str
    root: int | None  # None: the image is embedded (bytes in the row)


def rows(shards: str | Path, check_images: bool = False) -> tuple[list[ExportRow], dict]:
    """The verified rows and the manifest (``check_images``: every image by path re-hashed too)."""
    table, manifest = load_table(shards, check_images=check_images)
    roots = manifest["image_roots"]
    out = []
    for r in table.to_pylist():
        rel, root = r["image"]["path"], r["image_root"]
        if root is not None:  # load_table made it absolute: relative to its root again
            rel = rel[len(str(Path(roots[root]))) + 1 :]
        out.append(ExportRow(r, rel, root))
    return out, manifest


def question(task: str, problem: str) -> str:
    """The question text of VLM-R1's released data for a sample's problem."""
    if task == "rec":
        return REC_QUESTION.format(expression=problem.strip().rstrip("."))
    return OVD_QUESTION.format(categories=problem)


def answer(task: str, solution: str) -> str:
    """The ground-truth answer text in original pixels, exactly as it parses back."""
    return answer_text(task, parse_solution(solution))


def dialect_warning(manifest: dict, target: str, trainer: str) -> str | None:
    """A loud line when the shards' difficulty labels were scored in another reward dialect than ``trainer``'s."""
    if manifest.get("scorer") is None:
        return None  # no difficulty labels, nothing to disagree with
    have = manifest_dialect(manifest)
    if have == target:
        return None
    return (
        f"warning: these shards' difficulty labels were scored with the {have!r} reward dialect; {trainer} "
        f"computes {target!r} rewards, so pass rates may not hold there (re-score with dialect: {target})"
    )


def export_folder(out: str | Path, overwrite: bool = False) -> Path:
    """The export folder, created; a symlink is refused (an export would write through it into its target), and so
    is a folder that already holds files unless ``overwrite`` (an export replaces files of its own names there)."""
    out = Path(out)
    if out.is_symlink():
        raise ValueError(f"{out}: --out is a symlink; exports write only into a real folder")
    if out.is_dir() and not overwrite:
        held = sorted(p.name for p in out.iterdir())
        if held:
            raise ValueError(
                f"{out}: --out is not empty ({len(held)} entries, e.g. {held[0]}); give --overwrite to replace the "
                "files an export writes there, or an empty or new folder"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out
