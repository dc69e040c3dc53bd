"""VLM-R1 jsonl: what ``src/open_r1/grpo_jsonl.py`` trains on, one file per task and image folder.

VLM-R1 cannot train REC and OVD in one run: REC uses the Qwen module's own rewards
(``--is_reward_customized_from_vlm_module True --task_type rec``: IoU on the first ``[d, d, d, d]``, rescaled
from the input frame), OVD the generic ``accuracy`` reward with ``--reward_method odLength`` and the
``odLength`` question template. So each task gets its own files and its own launch script.

A line: ``{"id": int, "image": relative path, "conversations": [{"from": "human", "value": question},
{"from": "gpt", "value": answer}], "accu_reward_method": ...}``. Ids are integers (VLM-R1's released files
use integers; ``Dataset.from_list`` refuses a column mixing int and str): the first 60 bits of our sample
id, which are stable, checked for collisions within the export.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from curation.exports import ExportRow, answer, export_folder, question, rows

# task -> the grpo_jsonl.py arguments that train it as VLM-R1 does
TASK_ARGS = {
    "rec": [
        "--task_type",
        "rec",
        "--is_reward_customized_from_vlm_module",
        "True",
        "--reward_funcs",
        "accuracy",
        "format",
    ],
    "ovd": ["--task_type", "odLength", "--reward_method", "{methods}", "--reward_funcs", "accuracy", "format"],
}
REWARD_METHOD = {"rec": "default", "ovd": "odLength"}  # the per-line accu_reward_method


@dataclass(frozen=True)
class JsonlFile:
    path: Path
    image_folder: str
    task: str
    lines: int


def integer_id(sample_id: str) -> int:
    """A stable integer for a 24-hex sample id: its first 60 bits (fits int64 with room to spare)."""
    return int(sample_id[:15], 16)


def _line(r: ExportRow, task: str) -> dict:
    human = ("<image>" if task == "rec" else "") + question(task, r.row["problem"])
    return {
        "id": integer_id(r.row["sample_id"]),
        "image": r.relative,
        "conversations": [
            {"from": "human", "value": human},
            {"from": "gpt", "value": answer(task, r.row["solution"])},
        ],
        "accu_reward_method": REWARD_METHOD[task],
    }


def _check_ids(export_rows: list[ExportRow]) -> None:
    seen: dict[int, str] = {}
    for r in export_rows:
        i, sid = integer_id(r.row["sample_id"]), r.row["sample_id"]
        if seen.setdefault(i, sid) != sid:
            raise ValueError(f"integer id {i} of samples {seen[i]} and {sid} collides; export them separately")


def to_vlmr1_jsonl(
    shards: str | Path, out: str | Path, check_images: bool = False, overwrite: bool = False
) -> list[JsonlFile]:
    """Write ``out/<recipe>-<task>[-<i>].jsonl`` (one per task and image root) and ``out/train-<task>.sh``
    (``overwrite``: into a folder that already holds files)."""
    out = export_folder(out, overwrite)
    export_rows, manifest = rows(shards, check_images)
    _check_ids(export_rows)
    groups: dict[tuple[str, int], list[str]] = {}
    for r in export_rows:
        root = r.root
        if root is None:  # embedded: write the bytes under out/images, inside out
            target = _inside(out / "images", r.relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(r.row["image"]["bytes"])
            root = -1
        groups.setdefault((r.row["task"], root), []).append(json.dumps(_line(r, r.row["task"]), ensure_ascii=False))
    name = manifest.get("recipe", {}).get("name", "export")
    files = []
    for task in sorted({t for t, _ in groups}):
        mine = sorted(k for k in groups if k[0] == task)
        for i, key in enumerate(mine):
            path = out / (f"{name}-{task}.jsonl" if len(mine) == 1 else f"{name}-{task}-{i}.jsonl")
            path.write_text("\n".join(groups[key]) + "\n")
            folder = str((out / "images").resolve()) if key[1] == -1 else manifest["image_roots"][key[1]]
            files.append(JsonlFile(path.resolve(), folder, task, len(groups[key])))
    for task in sorted({f.task for f in files}):
        (out / f"train-{task}.sh").write_text(launch_script([f for f in files if f.task == task], manifest))
    return files


def _inside(root: Path, relative: str) -> Path:
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"image key {relative!r} leaves the export folder {root}")
    return target


def _scorer_sampling(manifest: dict) -> dict:
    """The sampler the shards' difficulty was scored with ({} for unscored shards): the scripts' k and length."""
    return ((manifest.get("scorer") or {}).get("sampling")) or {}


def launch_args(files: list[JsonlFile], manifest: dict) -> list[str]:
    """The grpo_jsonl.py arguments for one task's files, with the scorer's k and length when it has them."""
    task = files[0].task
    sampling = _scorer_sampling(manifest)
    methods = ":".join(REWARD_METHOD[task] for _ in files)
    args = ["--data_file_paths", ":".join(str(f.path) for f in files)]
    args += ["--image_folders", ":".join(f.image_folder for f in files)]
    args += [a.replace("{methods}", methods) for a in TASK_ARGS[task]]
    args += ["--num_generations", str(sampling.get("n", 8))]
    args += ["--max_completion_length", str(sampling.get("max_new_tokens", 1024))]
    return args


# The VLM-R1 revision the scripts were run against (tests/test_flows + the closing note of the session that checked
# them): grpo_jsonl.py with VLMGRPOTrainer, its pins (transformers 4.49.0, trl 0.17.0, deepspeed 0.15.4).
VLMR1_REVISION = "om-ai-lab/VLM-R1@90052f4"
# VLM-R1 picks Qwen2VLModule when the model path contains "qwen" and the model class when it contains these (case
# matters); any other path ends in `ValueError: Unsupported model`.
PATH_NAMES = {"qwen2_5_vl": "Qwen2.5-VL", "qwen2_vl": "Qwen2-VL"}
SCRIPT_DEFAULTS = {"NPROC": 8, "BATCH": 8, "ACCUM": 2}  # VLM-R1's run_scripts: 8 GPUs, batch 8, accumulation 2


def prompts_per_step(generations: int, nproc: int = 8, batch: int = 8, accum: int = 2) -> int:
    """Distinct prompts VLM-R1's RepeatRandomSampler takes per optimizer step: it chunks a shuffled index list by
    processes x batch x accumulation / generations and drops an incomplete chunk, so a file with fewer lines trains
    0 steps without a word."""
    return max(1, nproc * batch * accum // max(1, generations))


def launch_script(files: list[JsonlFile], manifest: dict) -> str:
    """A shell script that trains on ``files`` with VLM-R1's own ``grpo_jsonl.py`` (``VLM_R1`` = its checkout,
    ``MODEL`` = the model folder). ZeRO-2 by default: ZeRO-3 with ``--beta`` > 0 fails on VLM-R1 as released."""
    task = files[0].task
    family = (manifest.get("family") or {}).get("family", "qwen2_5_vl")
    name = PATH_NAMES.get(family, "Qwen2.5-VL")
    knobs = " ".join(f"{k}={v}" for k, v in SCRIPT_DEFAULTS.items())
    lines = [
        "#!/usr/bin/env bash",
        f"# VLM-R1 GRPO on the {task} export of recipe {manifest.get('recipe', {}).get('name')!r}.",
        f"# Checked against {VLMR1_REVISION} (its pins: transformers 4.49.0, trl 0.17.0, deepspeed 0.15.4).",
        "# With those pins VLM-R1 cannot import grpo_jsonl.py until its GLM module's import is guarded (VLM-R1",
        "# issue #353: in src/open_r1/vlm_modules/glm_module.py wrap `from transformers import",
        "# Glm4vForConditionalGeneration` in try/except ImportError), or use a transformers that has Glm4v.",
        f"# Environment knobs (defaults): {knobs} (processes x batch per device x accumulation),",
        "# ZERO=2 (3: VLM-R1 issue #338 makes ZeRO-3 with --beta > 0 load the reference model with",
        "# AutoModelForCausalLM, which fails for Qwen2.5-VL; its one-line fix is to load it with model_cls in",
        "# src/open_r1/trainer/grpo_trainer.py), OUTPUT, PRECISION (--bf16), EXTRA (more grpo_jsonl.py arguments).",
        "set -euo pipefail",
        ': "${VLM_R1:?set VLM_R1 to a checkout of om-ai-lab/VLM-R1}" "${MODEL:?set MODEL to the model path}"',
        'case "$MODEL" in',
        f"  *{name}*) ;;",
        f'  *) echo "MODEL=$MODEL: VLM-R1 picks the model class from the path, which must contain {name};'
        f' link it under such a name: ln -s \\"$MODEL\\" /some/where/{name}-mine" >&2; exit 2 ;;',
        "esac",
        'cd "$VLM_R1/src/open-r1-multimodal"',
        'torchrun --nproc_per_node="${NPROC:-8}" src/open_r1/grpo_jsonl.py \\',
        '  --model_name_or_path "$MODEL" --output_dir "${OUTPUT:-checkpoints/vlmr1-curate-' + task + '}" \\',
        "  " + " ".join(shlex.quote(a) for a in launch_args(files, manifest)) + " \\",
        '  --per_device_train_batch_size "${BATCH:-8}" --gradient_accumulation_steps "${ACCUM:-2}" \\',
        "  --gradient_checkpointing true ${PRECISION:---bf16} --logging_steps 1 --num_train_epochs 2 \\",
        "  --save_steps 100 --beta 0.04 --dataset-name this_is_not_used ${EXTRA:-} \\",
        '  --deepspeed "$VLM_R1/src/open-r1-multimodal/local_scripts/zero${ZERO:-2}.json"',
    ]
    return "\n".join(lines) + "\n"


def short_files(files: list[JsonlFile], manifest: dict) -> list[str]:
    """One warning per task whose lines are fewer than one step of the script's defaults consumes."""
    generations = int(_scorer_sampling(manifest).get("n", 8))
    need = prompts_per_step(generations)
    warnings = []
    for task in sorted({f.task for f in files}):
        lines = sum(f.lines for f in files if f.task == task)
        if lines < need:
            warnings.append(
                f"{task}: {lines} lines, but with train-{task}.sh's defaults (NPROC=8 x BATCH=8 x ACCUM=2 / "
                f"{generations} generations) VLM-R1's sampler takes {need} distinct prompts per step and drops an "
                f"incomplete chunk: it would train 0 steps; set NPROC, BATCH and ACCUM so that NPROC x BATCH x "
                f"ACCUM / {generations} <= {lines}"
            )
    return warnings
