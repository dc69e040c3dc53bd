"""The export stage: verified shards to a trainer's own format, with what to run next as the report's notes."""

from __future__ import annotations

from pathlib import Path

from vlmr1.report import StageReport
from vlmr1.rewards import DEFAULT_DIALECT

TARGETS = {  # --to -> (the dialect that trainer computes, who computes it)
    "vlmr1-jsonl": ("vlmr1", "VLM-R1"),
    "easyr1": (DEFAULT_DIALECT, "our EasyR1 reward function"),  # it ships our rewards
}


def export_shards(
    shards: str | Path, to: str, out: str | Path, *, embed_images=False, verify_images=False, overwrite=False
) -> StageReport:
    """Write the export; the report lists its files, the command that trains on it, and warnings (a dialect other
    than the trainer's, a file too short for the launch script's defaults)."""
    from curation.exports import dialect_warning
    from curation.exports.easyr1 import to_easyr1
    from curation.exports.vlmr1_jsonl import short_files, to_vlmr1_jsonl
    from vlmr1.shards import read_manifest

    if to not in TARGETS:
        raise ValueError(f"--to {to!r}: expected one of {', '.join(TARGETS)}")
    manifest = read_manifest(shards)[1]
    warnings = [w for w in [dialect_warning(manifest, *TARGETS[to])] if w]
    out = Path(out)
    report = StageReport("export", f"export to {to}", {"to": to, "out": str(out)})
    if to == "vlmr1-jsonl":
        files = to_vlmr1_jsonl(shards, out, check_images=verify_images, overwrite=overwrite)
        report.tables["files"] = [{"task": f.task, "lines": f.lines, "images": str(f.image_folder)} for f in files]
        report.files.update({f"{f.task} jsonl": str(f.path) for f in files})
        report.notes += [f"train {task} with VLM-R1: VLM_R1=<checkout> MODEL=<model> bash {out / f'train-{task}.sh'}"
                         for task in sorted({f.task for f in files})]  # fmt: skip
        warnings += [f"warning: {line}" for line in short_files(files, manifest)]
    else:
        export = to_easyr1(shards, out, embed=embed_images, check_images=verify_images, overwrite=overwrite)
        report.files.update({"parquet": str(export.parquet), "reward function": str(export.reward_function)})
        report.notes.append("python3 -m verl.trainer.main config=examples/config.yaml " + " ".join(export.overrides()))
    report.notes += warnings
    return report
