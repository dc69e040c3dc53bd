"""The README as a newcomer reads it: its walk-through runs as written, its training config validates, and it
speaks to outsiders (no issue numbers as titles, no links outside the repository)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def block(tag: str) -> str:
    """The fenced block right after ``<!-- readme-test: TAG -->``."""
    match = re.search(rf"<!-- readme-test: {tag} -->\n```\w*\n(.*?)```", README, re.S)
    assert match, f"README has no block tagged {tag}"
    return match.group(1)


def test_the_readme_is_written_for_outsiders():
    titles = re.findall(r"(?m)^#+ .*$", README)
    assert not [t for t in titles if re.search(r"issue \d", t, re.I)]
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert links and all(link.startswith("http") or (REPO / link).exists() for link in links), links
    assert "make demo" in README and "make test" in README and "ablation/testbed" in README


def test_the_readme_is_a_front_page_and_the_docs_build_strict(tmp_path):
    """README.md is a front page (the reference is docs/, built by mkdocs --strict in `make test`); a broken link
    in a page fails the build."""
    assert len(README.splitlines()) <= 300
    site = tmp_path / "site"
    shutil.copytree(REPO / "docs", site / "docs")
    shutil.copy(REPO / "mkdocs.yml", site / "mkdocs.yml")
    mkdocs = [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict"]  # --quiet hides what it counts
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(mkdocs, cwd=site, capture_output=True, text=True, env=env, timeout=300)
    assert built.returncode == 0 and (site / "site" / "cli" / "index.html").is_file(), built.stderr[-2000:]
    with open(site / "docs" / "quality.md", "a") as page:
        page.write("\nSee [the rules](rules-that-moved.md).\n")
    broken = subprocess.run(mkdocs, cwd=site, capture_output=True, text=True, env=env, timeout=300)
    assert broken.returncode != 0 and "rules-that-moved.md" in broken.stdout + broken.stderr


def test_the_readme_training_config_validates(tmp_path):
    from training.config import load_config

    (tmp_path / "train.yaml").write_text(block("train-config"))
    cfg = load_config(tmp_path / "train.yaml")
    assert cfg.deepspeed == "zero2" and cfg.rewards == {"iou": 1.0, "od_length": 1.0, "format": 1.0}


def _work_done(flow: Path) -> tuple:
    """Sources and rollouts in the demo's catalog, and its training folders."""
    import duckdb

    with duckdb.connect(str(flow / "catalog.duckdb"), read_only=True) as con:
        counts = con.execute("SELECT (SELECT count(*) FROM sources), (SELECT count(*) FROM rollouts)").fetchall()
    return counts, sorted(p.name for p in (flow / "run" / "train").iterdir())


def _checkout(to: Path) -> Path:
    """A git checkout of this working tree (tracked and untracked files, as `git status` sees them), committed, so
    what the walk-through leaves behind shows in its own `git status`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, to / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "checkout"]):
        subprocess.run(git + args, cwd=to, check=True, capture_output=True)
    return to


@pytest.mark.slow
def test_make_demo_then_the_readme_walk_through_as_written(tmp_path):
    """`vlmr1 demo` as `make demo` runs it (its own Prefect home, never ~/.prefect; a summary naming every report;
    what the numbers mean; a second run says "no new data"), then the walk-through block with bash -e as a user
    pastes it, on what the demo left, and every file it promises is there; all of it in a checkout, after which
    `make lint` passes and `git status --porcelain` is empty (the walk-through used to write into the repository
    root, and ruff then read DeepSpeed's generated code)."""
    repo = _checkout(tmp_path / "repo")
    home = tmp_path / "home"
    home.mkdir()
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {"PATH": path, "HOME": str(home)}

    def sh(script: str, columns: int = 200) -> subprocess.CompletedProcess:
        run_env = env | {"COLUMNS": str(columns)}
        r = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=repo, env=run_env,
                           capture_output=True, text=True, timeout=900)  # fmt: skip
        assert r.returncode == 0 and "Traceback" not in r.stdout + r.stderr, r.stdout[-3000:] + r.stderr[-3000:]
        return r

    demo = sh("vlmr1 demo", columns=400).stdout
    assert (repo / "demo-out" / ".prefect").is_dir() and not (home / ".prefect").exists()
    listed = ("funnel.md", "funnel.png", "difficulty.md", "pass_rate.png", "selection.md", "selection.png",
              "manifest.json", "reward_log.parquet", "train.log", "eval.json", "catalog.duckdb")  # fmt: skip
    assert all(name in demo for name in listed), demo[-4000:]
    assert "What the numbers mean" in demo and "unknown annotation id: 424242" in demo
    assert "demo inputs: tiny Qwen2.5-VL ready" in demo  # progress while the inputs are built
    flow = repo / "demo-out" / "flow"
    before = _work_done(flow)
    assert "no new data" in sh("vlmr1 demo").stdout
    assert _work_done(flow) == before  # nothing ingested, scored or trained

    walk = sh(block("runs"))
    out = repo / "demo-out" / "walk"
    assert walk.stdout.strip().splitlines()[-1] == '{"reward": 1.0}'
    assert (out / "shards" / "train" / "manifest.json").is_file()
    assert (out / "shards" / "train" / "selection.png").is_file()
    assert list((out / "export" / "vlmr1").glob("*.jsonl")) and (out / "export/vlmr1/train-rec.sh").exists()
    assert pq.read_table(out / "export" / "easyr1" / "train.parquet").num_rows > 0
    assert (out / "runs" / "first" / "final" / "config.json").is_file()
    assert list((out / "runs" / "first" / "final" / "eval").glob("*.json"))
    assert list((out / "reports" / "quality").glob("default-*/funnel.png"))
    page = (out / "review" / "review.html").read_text()
    assert page.count('class="card"') == 15 and (out / "review" / "review.png").is_file()  # every scored sample
    assert (out / "review" / "coco" / "rollouts.json").is_file()
    assert "unknown annotation id" in walk.stdout and "runs" in walk.stdout  # the rejects and runs sections
    assert "VLM-R1's sampler takes" in walk.stderr  # the demo's exports are shorter than one VLM-R1 step

    venv = Path(sys.executable).parent.parent
    lint = subprocess.run(["make", "lint", f"VENV={venv}", "-o", f"{venv}/.installed"], cwd=repo,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-3000:]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True)
    assert status.stdout == "", status.stdout
