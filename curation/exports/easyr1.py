"""EasyR1 (hiyouga/EasyR1) parquet: what ``verl.utils.dataset.RLHFDataset`` loads with its example config.

Columns (``data.prompt_key`` / ``answer_key`` / ``image_key`` of ``examples/config.yaml``):
  - ``problem``: the question only. EasyR1 wraps it with ``data.format_prompt``, a Jinja file rendered with
    ``content``; we ship ``format_prompt.jinja`` that puts the image first and the reasoning instruction of
    the prompt template the difficulty labels were scored with around it, as our scorer did.
  - ``answer``: a JSON object for our reward function (``vlmr1.easyr1_reward``, shipped as
    ``reward_function.py``): task, boxes in original pixels, original size, EasyR1's resize bounds and the
    model family's frame. EasyR1 gives a reward function nothing but this string.
  - ``images``: a list of paths relative to the ``data.image_dir`` the export prints (EasyR1 joins them),
    or, with ``embed``, a list of ``{bytes, path}`` that it decodes from the bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.exports import export_folder, question, rows
from vlmr1.families import get_family
from vlmr1.prompts import get_template
from vlmr1.records import parse_solution

EASYR1_MIN_PIXELS, EASYR1_MAX_PIXELS = 262144, 4194304  # data.min_pixels / max_pixels in examples/config.yaml


@dataclass(frozen=True)
class EasyR1Export:
    parquet: Path
    image_dir: str | None  # data.image_dir (None: images embedded)
    format_prompt: Path
    reward_function: Path

    def overrides(self) -> list[str]:
        """The ``key=value`` arguments of ``python3 -m verl.trainer.main`` that train on this export."""
        args = [f"data.train_files={self.parquet}", f"data.format_prompt={self.format_prompt}"]
        args += [f"worker.reward.reward_function={self.reward_function}:compute_score"]
        return args + ([f"data.image_dir={self.image_dir}"] if self.image_dir else [])


def format_prompt(template: str) -> str:
    """A Jinja format prompt with our template's REC and OVD wording; the task is told by the question text."""
    t = get_template(template)
    rec, ovd = (x.replace("{question}", "{{ content | trim }}") for x in (t.rec, t.ovd))
    return f"<image>{{% if 'detect the following objects' in content %}}{ovd}{{% else %}}{rec}{{% endif %}}\n"


def ground_truth(row: dict, family: dict, min_pixels: int, max_pixels: int) -> str:
    targets = [{"label": t.label, "bbox": list(t.bbox)} for t in parse_solution(row["solution"])]
    return json.dumps(
        {
            "task": row["task"],
            "solution": targets,
            "width": row["width"],
            "height": row["height"],
            "min_pixels": min_pixels,
            "max_pixels": max_pixels,
            "family": family,
        }
    )


def to_easyr1(
    shards: str | Path,
    out: str | Path,
    *,
    embed: bool = False,
    min_pixels: int = EASYR1_MIN_PIXELS,
    max_pixels: int = EASYR1_MAX_PIXELS,
    check_images: bool = False,
    overwrite: bool = False,
) -> EasyR1Export:
    """Write ``out/train.parquet``, ``out/format_prompt.jinja`` and ``out/reward_function.py`` (``overwrite``: into
    a folder that already holds files)."""
    out = export_folder(out, overwrite)
    export_rows, manifest = rows(shards, check_images)
    family = manifest.get("family") or get_family("qwen2_5_vl").key()
    template = manifest.get("template", "vlmr1@2").split("@")[0]
    embed = embed or any(r.root is None for r in export_rows)  # embedded shards have no files to point at
    absolute = [r.row["image"]["path"] for r in export_rows]
    image_dir = None if embed or not absolute else os.path.commonpath([os.path.dirname(p) for p in absolute])
    if embed:
        images = pa.array(
            [[{"bytes": _bytes(r.row), "path": r.relative}] for r in export_rows],
            pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        )
    else:
        images = pa.array([[os.path.relpath(p, image_dir)] for p in absolute], pa.list_(pa.string()))
    table = pa.table(
        {
            "problem": [question(r.row["task"], r.row["problem"]) for r in export_rows],
            "answer": [ground_truth(r.row, family, min_pixels, max_pixels) for r in export_rows],
            "images": images,
            "sample_id": [r.row["sample_id"] for r in export_rows],
        }
    )
    pq.write_table(table, out / "train.parquet")
    (out / "format_prompt.jinja").write_text(format_prompt(template))
    (out / "reward_function.py").write_text(_reward_file())
    return EasyR1Export(
        (out / "train.parquet").resolve(),
        image_dir,
        (out / "format_prompt.jinja").resolve(),
        (out / "reward_function.py").resolve(),
    )


def _bytes(row: dict) -> bytes:
    if row["image"]["bytes"] is not None:
        return row["image"]["bytes"]
    return Path(row["image"]["path"]).read_bytes()


def _reward_file() -> str:
    """A two-line module EasyR1 can load by path: our reward function, found where this package is installed."""
    import vlmr1

    site = str(Path(vlmr1.__file__).resolve().parents[1])
    return (
        '"""vlmr1-curate reward function for EasyR1 (see vlmr1/easyr1_reward.py)."""\n\n'
        "import sys\n\n"
        f"sys.path.append({site!r})  # where vlmr1-curate was installed when exported\n"
        "from vlmr1.easyr1_reward import REWARD_NAME, REWARD_TYPE, compute_score  # noqa: E402,F401\n"
    )
