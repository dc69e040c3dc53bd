"""The `vlmr1` console script, run as a user runs it (a subprocess)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

VLMR1 = [str(Path(sys.executable).parent / "vlmr1")]


def run(*args, stdin: str | None = None, cwd=None):
    return subprocess.run(VLMR1 + list(args), input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120)


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("vlmr1-curate ")


def test_rewards_score_reads_stdin_and_keeps_order():
    sol = [{"label": "x", "bbox": [0, 0, 100, 100]}]
    rows = [
        {
            "completion": '<think>t</think><answer>{"bbox_2d": [0, 0, 100, 100]}</answer>',
            "solution": sol,
            "width": 200,
            "height": 200,
        },
        {"completion": "garbage", "solution": sol, "width": 200, "height": 200},
        {
            "completion": "<think>t</think><answer>[0, 0, 100, 50]</answer>",
            "solution": sol,
            "width": 200,
            "height": 200,
        },
    ]
    out = run(
        "rewards",
        "score",
        "--reward",
        "iou",
        "--frame",
        "abs_original",
        stdin="".join(json.dumps(r) + "\n" for r in rows),
    )
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["reward"] for line in out.stdout.splitlines()] == [1.0, 0.0, 0.5]


def test_rewards_score_resized_frame_from_file(tmp_path):
    """abs_resized answers are mapped back through the resized size the row gives."""
    sol = [{"label": "x", "bbox": [100, 100, 200, 200]}]
    row = {
        "completion": "<think>t</think><answer>[50, 50, 100, 100]</answer>",
        "solution": sol,
        "width": 640,
        "height": 480,
        "resized_width": 320,
        "resized_height": 240,
    }
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(row) + "\n")
    out = run("rewards", "score", "--reward", "hit@0.5", "--frame", "abs_resized", str(path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"reward": 1.0}


def test_rewards_score_ovd_with_fenced_json():
    sol = [{"label": "cat", "bbox": [0, 0, 10, 10]}]
    comp = '<think>t</think><answer>```json\n[{"bbox_2d": [0, 0, 10, 10], "label": "cat"}]\n```</answer>'
    rows = [
        {"completion": comp, "solution": sol, "width": 50, "height": 50},
        {"completion": comp, "solution": [], "width": 50, "height": 50},
    ]
    out = run("rewards", "score", "--reward", "od_length", stdin="".join(json.dumps(r) + "\n" for r in rows))
    assert [round(json.loads(line)["reward"], 9) for line in out.stdout.splitlines()] == [1.0, 0.0]


def test_bad_input_names_the_line_and_reason():
    good = json.dumps({"completion": "", "solution": [], "width": 10, "height": 10})
    bad = json.dumps({"completion": "", "solution": [{"label": "a", "bbox": [5, 5, 1, 1]}], "width": 10, "height": 10})
    out = run("rewards", "score", "--reward", "iou", stdin=good + "\n" + bad + "\n")
    assert out.returncode == 2
    assert "<stdin>:2: solution[0]" in out.stderr and "no area" in out.stderr
    out = run("rewards", "score", "--reward", "iou", stdin="{not json\n")
    assert out.returncode == 2 and "<stdin>:1: not JSON" in out.stderr
    out = run("rewards", "score", "--reward", "nope", stdin="")
    assert out.returncode != 0 and "unknown reward" in out.stderr


def test_demo_writes_samples_and_reward_inputs(tmp_path):
    out = run("demo", "--out", str(tmp_path / "d"), "--no-flow")  # the flow part runs end to end in test_flows.py
    assert out.returncode == 0, out.stderr
    table = pq.read_table(tmp_path / "d" / "samples.parquet")
    assert table.num_rows == 3 and set(table.column("task").to_pylist()) == {"rec", "ovd"}
    lines = (tmp_path / "d" / "reward_inputs.jsonl").read_text().splitlines()
    scored = run("rewards", "score", "--reward", "format", str(tmp_path / "d" / "reward_inputs.jsonl"))
    assert [json.loads(x)["reward"] for x in scored.stdout.splitlines()] == [1.0] * len(lines)
    # the demo's suggestion: iou on REC rows; an OVD row is not iou's task and prints null (it printed 0.0)
    iou = run("rewards", "score", "--reward", "iou", str(tmp_path / "d" / "reward_inputs.jsonl"))
    tasks = [json.loads(x)["task"] for x in lines]
    rewards = [json.loads(x)["reward"] for x in iou.stdout.splitlines()]
    assert "ovd" in tasks and all((r is None) == (t == "ovd") for r, t in zip(rewards, tasks))
    assert all(r > 0.7 for r in rewards if r is not None)


def test_catalog_shows_sections_and_never_creates_a_catalog(tmp_path):
    """`vlmr1 catalog`: sources, rejects by reason with an example naming file and record, recipes with what they
    keep; a missing catalog or an unknown section is one line and exit 2, and nothing is created."""
    from curation.demo.fixtures import make_refcoco

    refs = make_refcoco(tmp_path / "refer")
    catalog = tmp_path / "c.duckdb"
    assert run("ingest", "refcoco", str(refs), "--catalog", str(catalog)).returncode == 0
    assert run("quality", "default", "--catalog", str(catalog)).returncode == 0
    out = subprocess.run(
        [*VLMR1, "catalog", str(catalog)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},
    )  # a tmp path of any length fits: no wrapped cell
    assert out.returncode == 0, out.stderr
    for title in ("summary", "sources", "rejects", "recipes"):
        assert title in out.stdout
    assert "unknown annotation id: 424242" in out.stdout and "refs(unc).p refs #" in out.stdout
    assert "default" in out.stdout and "scorers: none" in out.stdout and "runs: none" in out.stdout
    missing = run("catalog", str(tmp_path / "typo.duckdb"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such catalog" in missing.stderr
    assert not (tmp_path / "typo.duckdb").exists()
    bad = run("catalog", str(catalog), "--section", "rejectz")
    assert bad.returncode == 2 and "sections: summary, sources" in bad.stderr


def test_commands_that_read_a_catalog_refuse_a_missing_one(tmp_path):
    """A mistyped --catalog is one line and exit 2, and no empty catalog appears (it used to report "kept 0 of
    0" and exit 0)."""
    typo = tmp_path / "typo.duckdb"
    for args in (["quality", "default"], ["score", "default"], ["shard", "default", "--out", str(tmp_path / "s")]):
        out = run(*args, "--catalog", str(typo))
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.strip().count("\n") == 0 and "no such catalog" in out.stderr and str(typo) in out.stderr
        assert not typo.exists()


def test_a_rule_parameter_of_the_wrong_kind_is_one_line_naming_file_line_and_value(tmp_path):
    """`max_distance: four` and `min_px: one` used to reach DuckDB (a 68-line traceback, a ConversionException)."""
    from curation.demo.fixtures import make_refcoco

    catalog = tmp_path / "c.duckdb"
    assert run("ingest", "refcoco", str(make_refcoco(tmp_path / "refer")), "--catalog", str(catalog)).returncode == 0
    for rule, param, value, default in (("near_duplicate_image", "max_distance", "four", "4"),
                                        ("degenerate_box", "min_px", "one", "1.0")):  # fmt: skip
        recipe = tmp_path / f"{rule}.yaml"
        recipe.write_text(f"name: mine\nrules:\n  - rule: {rule}\n    params: {{{param}: {value}}}\n")
        out = run("quality", str(recipe), "--catalog", str(catalog))
        assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
        assert f"{recipe}:3" in out.stderr and f"{param} must be a number like {default}, got '{value}'" in out.stderr
