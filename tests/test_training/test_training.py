"""GRPO on DeepSpeed (CPU): 2 steps in one and two processes, reward log, resume, cancel; evaluation with known
answers."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from curation.demo.inputs import write_train_config
from curation.demo.tiny_model import build_tiny_vlm
from curation.quality.recipe import load_recipe
from curation.selection.select import select
from curation.shards.write import write_shards
from helpers import coco_and_refcoco_catalog
from training.config import TrainConfig, TrainConfigError, load_config
from training.evaluate import evaluate_model, rows_from_shards
from training.grpo import ManifestMismatch, check_manifest, sampler_differences
from training.launch import LaunchSpec, run
from vlmr1.families import get_family
from vlmr1.rollout.base import Completion, EngineStats

STEPS = 2


@dataclass(frozen=True)
class Setup:
    root: Path
    db: Path
    model: Path
    config: Path
    shards: Path
    eval: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    root = tmp_path_factory.mktemp("train")
    db = coco_and_refcoco_catalog(root, 8, 6)
    write_shards(select(db, load_recipe("none")), db, root / "shards")
    write_shards(select(db, load_recipe("none"), pool="eval"), db, root / "eval_shards")
    model = build_tiny_vlm(root / "tiny", "qwen2_5_vl", warm_start_steps=120)
    config = write_train_config(root / "train.yaml", model, max_steps=STEPS)
    return Setup(root, db, model, config, root / "shards", root / "eval_shards")


def _weights(folder):
    from safetensors.numpy import load_file

    return load_file(str(next(Path(folder).glob("*.safetensors"))))


def _reward_log(out):
    import pyarrow.parquet as pq

    return pq.read_table(out / "reward_log.parquet").to_pylist()


@pytest.fixture(scope="module")
def one_process(setup):
    out = setup.root / "run1"
    r = run(LaunchSpec(str(setup.config), str(setup.shards), str(out)))
    assert r.returncode == 0, "\n".join(r.tail)
    return out, r


@pytest.mark.slow
def test_two_grpo_steps_on_zero2_in_one_process_change_the_parameters(setup, one_process):
    out, r = one_process
    assert r.result["global_step"] == STEPS and (out / "checkpoint-1").is_dir() and (out / "checkpoint-2").is_dir()
    before, after = _weights(setup.model), _weights(out / "final")
    trained = [k for k in after if "visual" not in k]
    assert any(not np.array_equal(before[k], after[k]) for k in trained)
    assert all(
        np.array_equal(before[k], after[k]) for k in after if "visual" in k
    )  # the vision tower is frozen by default
    log = _reward_log(out)
    keys = [(row["sample_id"], row["step"]) for row in log]
    assert len(keys) == len(set(keys)) == STEPS * 2  # 8 completions per step / 4 generations = 2 samples per step
    assert all(row["n"] == 4 and 0 <= row["reward_mean"] for row in log)


@pytest.mark.slow
def test_two_processes(setup):
    out = setup.root / "run2"
    r = run(LaunchSpec(str(setup.config), str(setup.shards), str(out), nprocs=2))
    assert r.returncode == 0, "\n".join(r.tail)
    log = _reward_log(out)
    keys = [(row["sample_id"], row["step"]) for row in log]
    assert len(keys) == len(set(keys)) == STEPS * 4 and all(
        row["n"] == 4 for row in log
    )  # two ranks x 2 samples per step


@pytest.mark.slow
def test_resume_from_step_one_equals_the_uninterrupted_run(setup, one_process):
    full, _ = one_process
    out = setup.root / "resumed"
    out.mkdir()
    shutil.copytree(full / "checkpoint-1", out / "checkpoint-1")
    (out / "reward_log").mkdir()
    for f in (full / "reward_log").glob("step-000001-*"):
        shutil.copy(f, out / "reward_log" / f.name)
    r = run(LaunchSpec(str(setup.config), str(setup.shards), str(out), resume=True))
    assert r.returncode == 0, "\n".join(r.tail)
    assert r.result["global_step"] == STEPS
    a, b = _weights(full / "final"), _weights(out / "final")
    assert all(np.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert _reward_log(out) == _reward_log(full)


@pytest.mark.slow
def test_cancelling_the_launcher_leaves_no_process_of_the_group(setup):
    import psutil

    cfg = yaml.safe_load(setup.config.read_text())
    cfg["max_steps"] = 10_000
    long = setup.root / "long.yaml"
    long.write_text(yaml.safe_dump(cfg))
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "training.launch",
            "--config",
            str(long),
            "--manifest",
            str(setup.shards),
            "--output",
            str(setup.root / "cancel"),
            "--nprocs",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    try:
        pgid, deadline = None, time.monotonic() + 300
        for line in launcher.stdout:
            if line.startswith("VLMR1_LAUNCHED"):
                pgid = int(line.split("pgid=")[1].split()[0])
            if pgid and ("it/s]" in line or "s/it]" in line) and "Loading" not in line:  # training steps are running
                break
            assert time.monotonic() < deadline
        tree = psutil.Process(launcher.pid).children(recursive=True)
        assert pgid and len(tree) >= 3  # torchrun and its two workers (in sessions of their own)
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=60)
        gone, alive = psutil.wait_procs(tree, timeout=10)
        assert alive == []
        assert [p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pgid] == []
    finally:
        if launcher.poll() is None:
            launcher.kill()


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_manifest_for_another_family_or_template_is_refused(setup, tmp_path):
    cfg = load_config(setup.config)
    manifest = json.loads((setup.shards / "manifest.json").read_text())
    assert check_manifest(manifest, cfg)  # no scorer in these shards: a warning, not a refusal
    other = dict(manifest, family=get_family("qwen2_vl").key())
    with pytest.raises(ManifestMismatch, match="scored for"):
        check_manifest(other, cfg)
    with pytest.raises(ManifestMismatch, match="prompt template"):
        check_manifest(dict(manifest, template="plain@1"), cfg)
    # a scorer that sampled differently from training: each difference named, not refused
    scored = dict(
        manifest,
        scorer={
            "sampling": {
                "n": cfg.num_generations,
                "temperature": 0.7,
                "top_p": cfg.top_p,
                "top_k": 50,
                "max_new_tokens": cfg.max_completion_length,
            }
        },
    )
    said = sampler_differences(scored, cfg)
    assert len(said) == 2 and "temperature=0.7" in said[0] and "top_k=50" in said[1]
    same = {
        "n": cfg.num_generations,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "top_k": cfg.top_k,
        "max_new_tokens": cfg.max_completion_length,
    }
    assert sampler_differences(dict(manifest, scorer={"sampling": same}), cfg) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: x\nnum_generations: 4\nper_device_train_batch_size: 6\n")
    with pytest.raises(TrainConfigError, match=r"bad\.yaml:1: \(top level\): .*multiple of num_generations"):
        load_config(bad)


def test_any_trl_setting_passes_through_by_its_name_and_an_unknown_one_is_refused_at_its_line(tmp_path):
    """TrainConfig declares only what we read or default differently; every other GRPOConfig field reaches TRL
    as written, and a name neither ours nor TRL's is one error naming the file, its line and the name."""
    good = tmp_path / "good.yaml"
    good.write_text("model: m\ndeepspeed: null\nwarmup_steps: 2\nscale_rewards: none\nmax_steps: 3\n")
    args = load_config(good).grpo_args(tmp_path)
    assert (args.warmup_steps, args.scale_rewards, args.max_steps, args.beta) == (2, "none", 3, 0.04)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: m\nwarmup_steps: 2\nscale_reward: false\n")
    with pytest.raises(
        TrainConfigError, match=r"bad\.yaml:3: scale_reward: .*'scale_reward': neither ours .* GRPOConfig"
    ):
        load_config(bad)


def test_the_training_sampler_is_the_scorers_sampler_in_trl_names(tmp_path):
    """TrainConfig speaks TRL (num_generations, max_completion_length); Sampling is the scorer's; one mapping."""
    from vlmr1.rollout.base import Sampling

    cfg = TrainConfig(
        model="m",
        num_generations=4,
        per_device_train_batch_size=4,
        temperature=0.7,
        top_p=0.9,
        top_k=5,
        max_completion_length=99,
        use_cpu=True,
        deepspeed=None,
    )
    assert cfg.sampling() == Sampling(n=4, temperature=0.7, top_p=0.9, max_new_tokens=99, seed=42, top_k=5)
    args = cfg.grpo_args(tmp_path)
    assert (args.num_generations, args.max_completion_length, args.top_k) == (4, 99, 5)
    assert Sampling.from_trl(args, seed=cfg.seed) == cfg.sampling()


def _pixels(row):
    from training.evaluate import _image

    return hashlib.sha256(_image(row).tobytes()).hexdigest()


class Scripted:
    """An engine that answers with the ground truth in the family's frame, optionally shifted: the metrics are then
    known."""

    def __init__(self, rows, shift=0.0):
        self.family, self.stats = get_family("qwen2_5_vl"), EngineStats()
        self.answers = {}
        for r in rows:
            boxes = self.family.frame().from_original(
                [t["bbox"] for t in json.loads(r["solution"])] or np.zeros((0, 4)), r["width"], r["height"]
            )
            boxes = boxes + np.array([shift, 0, shift, 0])
            if r["task"] == "rec":
                ans = json.dumps([float(v) for v in boxes[0]])
            else:
                dets = [
                    {"bbox_2d": [float(v) for v in b], "label": t["label"]}
                    for b, t in zip(boxes, json.loads(r["solution"]))
                ]
                ans = "```json\n" + json.dumps(dets) + "\n```" if dets else "None"
            self.answers[r["problem"], _pixels(r)] = f"<think>known</think><answer>{ans}</answer>"

    def generate(self, requests, sampling):
        out = []
        for req in requests:
            text = req.messages[0]["content"][-1]["text"]
            key = hashlib.sha256(req.images[0].tobytes()).hexdigest()
            match = [v for (p, px), v in self.answers.items() if px == key and f"describes: {p}." in text]
            out.append([Completion(match[0], 10)])
        return out


def test_evaluation_scores_known_answers(setup):
    from vlmr1.boxes import iou_pairwise

    rows = rows_from_shards(setup.eval)
    keys = [(r["problem"], _pixels(r)) for r in rows]
    rows = [
        r for r, k in zip(rows, keys) if keys.count(k) == 1
    ]  # the planted non-unique reference has no single right answer
    assert {r["task"] for r in rows} == {"rec"} and len(rows) > 3
    perfect = evaluate_model(Scripted(rows), rows)
    assert all(m["acc@0.5"] == 1.0 and m["mean_iou"] == pytest.approx(1.0) for m in perfect["metrics"].values())
    shifted = evaluate_model(Scripted(rows, shift=6.0), rows)
    frame = get_family("qwen2_5_vl").frame()
    for key, m in shifted["metrics"].items():
        split = key.rsplit("/", 1)[0]
        ious = []
        for r in rows:
            if r["split"] != split:
                continue
            gt = np.array(json.loads(r["solution"])[0]["bbox"], dtype=float)
            pred = frame.to_original(
                frame.from_original([gt], r["width"], r["height"]) + [6.0, 0, 6.0, 0], r["width"], r["height"]
            )[0]
            ious.append(float(iou_pairwise(pred[None], gt[None])[0]))
        assert m["mean_iou"] == pytest.approx(np.mean(ious)) and m["acc@0.5"] == pytest.approx(
            np.mean([v >= 0.5 for v in ious])
        )


@pytest.mark.slow
def test_cli_eval_writes_json_and_catalog_rows(setup, one_process):
    out, _ = one_process
    vlmr1 = str(Path(sys.executable).parent / "vlmr1")
    r = subprocess.run(
        [
            vlmr1,
            "eval",
            str(out / "final"),
            "--data",
            str(setup.eval),
            "--catalog",
            str(setup.db),
            "--max-new-tokens",
            "24",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert r.returncode == 0, r.stderr
    results = json.loads((out / "final" / "eval" / "eval_shards.json").read_text())
    assert results["n"] == len(rows_from_shards(setup.eval)) and all(
        "acc@0.5" in m for m in results["metrics"].values()
    )
    from curation import catalog

    with catalog.connect(setup.db) as con:
        n = con.execute("SELECT count(*) FROM evaluations WHERE metric IN ('acc@0.5', 'mean_iou')").fetchone()[0]
    assert n == 2 * len(results["metrics"])


def _ops_state(folder: Path) -> dict:
    """What a compile would change in DeepSpeed's op folders: each build's ninja log and library time."""
    return {str(p): (p.read_bytes(), (p.parent / f"{p.parent.name}.so").stat().st_mtime_ns)
            for p in sorted(folder.glob("*/.ninja_log"))}  # fmt: skip


def _another_environment_built_here(root: Path) -> None:
    """What a second clone (another venv, so other include paths in the compile command) leaves in the shared root:
    an op folder whose build.ninja names its own paths. A layout shared by environments rebuilds over it."""
    for ninja in list(root.glob("*/*/build.ninja")):
        foreign = root / ninja.parent.name
        foreign.mkdir(exist_ok=True)
        (foreign / "build.ninja").write_text(ninja.read_text().replace(sys.prefix, "/elsewhere/.venv"))
    (root / "0123456789ab" / "deepspeed_shm_comm").mkdir(parents=True, exist_ok=True)


def _the_other_shell(path: str) -> str:
    """PATH as the other kind of shell has it: with the venv activated (its bin, pip's ninja, first) when this one is
    not, else without it (the system's ninja, where there is one). The two ninjas could not read each other's logs, and
    each recompiled the op the other built."""
    venv_bin = str(Path(sys.executable).parent)
    parts = path.split(os.pathsep)
    return os.pathsep.join([p for p in parts if p != venv_bin] if parts[0] == venv_bin else [venv_bin, *parts])


@pytest.mark.slow
def test_ctrl_c_in_cli_train_is_exit_130_with_where_to_resume_and_the_next_launch_compiles_nothing(
    setup, one_process, tmp_path
):
    """Ctrl-C in `vlmr1 train` was `internal error: TypeError: 'NoneType' object is not subscriptable`; a second
    launch into the same --output retrained from scratch over its checkpoints; DeepSpeed's CPU op was compiled again
    at every switch between the CLI and the flows (one folder for every environment), and again at every switch between
    a shell with the venv's bin on PATH and one without (two ninjas, one pinned now)."""
    from training.extensions import extensions_dir

    ops = Path(extensions_dir())
    root = ops.parent
    before = _ops_state(ops)
    assert before, f"the first launch (one_process) built nothing in {ops}"
    _another_environment_built_here(root)
    config = write_train_config(tmp_path / "train.yaml", setup.model, max_steps=6)
    out = tmp_path / "run"
    vlmr1 = [str(Path(sys.executable).parent / "vlmr1"), "train", str(config), "--manifest", str(setup.shards)]
    env = {k: v for k, v in os.environ.items() if k != "TORCH_EXTENSIONS_DIR"} | {"COLUMNS": "250"}
    env["PATH"] = _the_other_shell(env["PATH"])
    child = subprocess.Popen([*vlmr1, "--output", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=tmp_path, env=env)  # fmt: skip
    deadline = time.monotonic() + 300
    for line in child.stdout:
        if "VLMR1_STEP 2/6" in line:
            break
        assert time.monotonic() < deadline and child.poll() is None
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    step = err.strip().splitlines()[-1]
    assert step.startswith("interrupted: training stopped at step ") and "/6; the same command with --resume " \
        "continues from checkpoint-" in step, err  # fmt: skip
    assert _ops_state(ops) == before  # the CLI's launch compiled nothing

    again = subprocess.run([*vlmr1, "--output", str(out)], capture_output=True, text=True, env=env, timeout=120)
    line = again.stderr.strip()
    last = step.rsplit(" ", 1)[1]
    assert again.returncode == 2 and line.startswith(
        f"error: {out}: --output holds a training run (last checkpoint: {last}); "
    ), line
    assert line.endswith("; --resume continues it from its last checkpoint, --overwrite starts again from scratch "
                         "(removes it), or choose another --output")  # fmt: skip
    resumed = subprocess.run([*vlmr1, "--output", str(out), "--resume"], capture_output=True, text=True, env=env,
                             timeout=600)  # fmt: skip
    assert resumed.returncode == 0 and "trained to step 6" in resumed.stdout, resumed.stderr[-2000:]
    assert _ops_state(ops) == before
