"""What a training run writes into its output folder, and what may be done with a folder that holds one."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

# What a training run writes into its output folder (TRL's Trainer and ours): anything else there is the user's.
RUN_FILES = ("checkpoint-*", "final", "reward_log*", "train.log", "train_result.json", "README.md", "runs", "eval")


def checkpoints(out: str | Path) -> list[tuple[int, Path]]:
    """The run's ``checkpoint-<step>`` folders as (step, folder), in step order."""
    found = [(p.name.split("-", 1)[1], p) for p in Path(out).glob("checkpoint-*")]
    return sorted((int(step), p) for step, p in found if step.isdigit())


def prepare_output(output: str | Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a folder that holds a run unless told what to do with it: ``resume`` continues from its
    last checkpoint, ``overwrite`` removes it (only when it holds nothing but a run's files) and starts again."""
    out = Path(output)
    if resume and overwrite:
        raise ValueError("--resume continues the run in --output, --overwrite removes it: give one of them")
    if not out.exists():
        if resume:
            raise ValueError(f"{out}: --resume: no such output folder to continue (drop --resume to start one)")
        return
    if not out.is_dir():
        raise ValueError(f"{out}: --output is a file; give a folder")
    held = sorted(p.name for p in out.iterdir())
    if resume:
        if not checkpoints(out):
            raise ValueError(f"{out}: --resume: no checkpoint-* there to continue from (drop --resume to start)")
        return
    if not held:
        return
    foreign = [n for n in held if not any(fnmatch.fnmatch(n, pattern) for pattern in RUN_FILES)]
    if foreign:
        raise ValueError(f"{out}: --output holds files a training run did not write ({', '.join(foreign[:3])}); "
                         "choose another --output")  # fmt: skip
    if not overwrite:
        last = checkpoints(out)
        what = f"last checkpoint: {last[-1][1].name}" if last else f"no checkpoint yet: {', '.join(held[:3])}"
        raise ValueError(
            f"{out}: --output holds a training run ({what}); --resume continues it from its last checkpoint, "
            "--overwrite starts again from scratch (removes it), or choose another --output"
        )
    shutil.rmtree(out)
