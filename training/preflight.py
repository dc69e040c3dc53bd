"""Checks a launch would otherwise fail on about 30 s later, deep in the child's traceback: the training config's
values, its model folder and DeepSpeed config, and the manifest of the shards it is asked to train on."""

from __future__ import annotations

from pathlib import Path

import yaml

from training.config import TrainConfig, TrainConfigError, load_config
from vlmr1.yamlfiles import line_of


def preflight(config: str | Path, manifest: str | Path) -> tuple[TrainConfig, list[str]]:
    """The config, and the manifest's warnings; ``TrainConfigError`` (``file:line: field: ...``) or ``ShardError``
    (one line naming the folder) for what cannot train. The shards' checksums are not hashed here: the training
    process verifies them as it loads them, and hashing gigabytes twice would double that I/O."""
    from training.grpo import check_manifest
    from vlmr1.families import check_model_folder
    from vlmr1.shards import read_manifest

    cfg = load_config(config)
    problems = []
    ds = cfg.deepspeed_config()
    if ds is not None and not Path(ds).is_file():
        problems.append(("deepspeed", f"{cfg.deepspeed!r} is not zero2, zero3, null or the path of a DeepSpeed JSON"))
    try:
        check_model_folder(cfg.model)
        cfg.family_obj()
    except ValueError as exc:
        problems.append(("model", str(exc)))
    if problems:
        root = yaml.compose(Path(config).read_text())
        raise TrainConfigError("\n".join(f"{config}:{line_of(root, (f,))}: {f}: {msg}" for f, msg in problems))
    folder, listed = read_manifest(manifest)
    try:
        return cfg, check_manifest(listed, cfg)
    except ValueError as exc:
        raise TrainConfigError(f"{config}: {exc} ({folder})") from None
