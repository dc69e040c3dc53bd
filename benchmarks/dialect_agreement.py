"""Does the ``vlmr1`` reward dialect compute what VLM-R1 computes? Row by row, against VLM-R1's own code.

    python benchmarks/dialect_agreement.py --vlmr1-repo PATH [--rec 3000 --ovd 2000 --seed 0]

PATH is a checkout of om-ai-lab/VLM-R1 (e.g. ``git worktree`` of the ``fetch`` mirror). Its reward
functions are read from that checkout at run time (``qwen_module.py``: ``iou_reward``,
``format_reward_rec``; ``grpo_jsonl.py``: ``od_reward``, ``odLength_reward``, ``map_reward``,
``calculate_map``, ``format_reward``; ``src/eval/test_rec_r1.py``: ``extract_bbox_answer``, ``iou``) with
their vendored pycocotools, and nothing of theirs is kept in this project. Completions are generated
(``kit.completions``): well-formed and malformed answers, other frames, None answers, several
blocks and fences. Prints a table of differing rows per reward (target 0) and our own dialect's count
beside it, for scale.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vlmr1 import dialect_vlmr1 as ours  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test kit: tests/kit
from kit.completions import ovd_cases, rec_batch, rec_cases  # noqa: E402

SRC = "src/open-r1-multimodal/src/open_r1"


def _functions(path: Path, names: set[str]) -> dict[str, str]:
    """Source of the named top-level or class-level functions of one file."""
    tree = ast.parse(path.read_text())
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in names:
            node.decorator_list = []
            found[node.name] = ast.unparse(node)
    return found


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_theirs(repo: Path) -> dict:
    """VLM-R1's functions, executed from its checkout with the names they use in scope."""
    import datetime
    import os

    from PIL import Image

    coco = _module(repo / SRC / "utils/pycocotools/coco.py", "vlmr1_coco")
    cocoeval = _module(repo / SRC / "utils/pycocotools/cocoeval.py", "vlmr1_cocoeval")
    scope = {"re": re, "json": json, "os": os, "datetime": datetime.datetime, "Image": Image}
    scope.update(COCO=coco.COCO, COCOeval=cocoeval.COCOeval)
    files = {
        repo / SRC / "vlm_modules/qwen_module.py": {"iou_reward", "format_reward_rec"},
        repo / SRC / "grpo_jsonl.py": {"od_reward", "odLength_reward", "map_reward", "calculate_map", "format_reward"},
        repo / "src/eval/test_rec_r1.py": {"extract_bbox_answer", "iou"},
    }
    for path, names in files.items():
        for name, source in _functions(path, names).items():
            exec(compile(source, f"{path}:{name}", "exec"), scope)  # noqa: S102 (their code, their checkout)
    return scope


def _image(folder: Path, w: int, h: int) -> str:
    from PIL import Image

    path = folder / f"{w}x{h}.png"
    if not path.exists():
        Image.new("RGB", (w, h)).save(path)
    return str(path)


def _quiet(fn, *args, **kwargs):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


SPREAD: dict[str, list[int]] = {}  # reward -> [rows at 0, rows strictly between, rows at 1] of VLM-R1's values


def _spread(name: str, value: float) -> None:
    counts = SPREAD.setdefault(name, [0, 0, 0])
    counts[0 if value == 0 else 2 if value == 1 else 1] += 1


def compare(theirs: dict, n_rec: int, n_ovd: int, seed: int) -> list[tuple[str, int, int, list]]:
    """(reward, rows, differing rows, first differences)."""
    from vlmr1.boxes import BoxFrame
    from vlmr1.rewards import score

    out = []
    folder = Path(tempfile.mkdtemp())
    rec = rec_cases(n_rec, seed)
    diffs = {"iou": [], "format (REC)": [], "Acc@0.5 (eval)": [], "iou, vlmr1-curate dialect": []}
    for c in rec:
        wrapped = [[{"content": c.completion}]]
        kw = {"image_grid_thw": [[1, c.input_wh[1] // 14, c.input_wh[0] // 14]]}
        kw["image_path"] = [[_image(folder, *c.image_wh)]]
        sol = f"<answer> {json.dumps(c.truth)} </answer>"
        pairs = {
            "iou": (_quiet(theirs["iou_reward"], wrapped, [sol], **kw)[0], ours.rec_iou(*c.args())),
            "format (REC)": (theirs["format_reward_rec"](wrapped)[0], ours.rec_format(c.completion)),
            "Acc@0.5 (eval)": (_their_hit(theirs, c), ours.rec_hit(*c.args())),
        }
        for name, (a, b) in pairs.items():
            _spread(name, a)
            if a != b:
                diffs[name].append((c.completion[:120], a, b))
    batch = rec_batch(rec, BoxFrame("abs_resized"))
    for c, value in zip(rec, score("iou", batch)):
        their = _quiet(
            theirs["iou_reward"],
            [[{"content": c.completion}]],
            [f"<answer> {json.dumps(c.truth)} </answer>"],
            image_grid_thw=[[1, c.input_wh[1] // 14, c.input_wh[0] // 14]],
            image_path=[[_image(folder, *c.image_wh)]],
        )[0]
        if abs(their - value) > 1e-9:
            diffs["iou, vlmr1-curate dialect"].append((c.completion[:120], their, value))
    out += [(name, len(rec), len(d), d[:3]) for name, d in diffs.items()]
    out += _compare_ovd(theirs, ovd_cases(n_ovd, seed))
    return out


def _their_hit(theirs: dict, c) -> float:
    box = theirs["extract_bbox_answer"](c.completion)
    (iw, ih), (w, h) = c.input_wh, c.image_wh
    box = [box[0] / iw * w, box[1] / ih * h, box[2] / iw * w, box[3] / ih * h]
    try:
        return 1.0 if theirs["iou"](box, c.truth) > 0.5 else 0.0
    except ZeroDivisionError:
        return 0.0


def _compare_ovd(theirs: dict, cases) -> list[tuple[str, int, int, list]]:
    diffs = {"od_ap": [], "od_ap50": [], "odLength": [], "format": []}
    for c in cases:
        sol = f"<answer> {c.truth_answer} </answer>"
        pairs = {
            "od_ap": (_quiet(theirs["od_reward"], c.completion, sol), ours.od_reward(c.completion, c.truth_answer)),
            "od_ap50": (
                _quiet(theirs["od_reward"], c.completion, sol, score_type=1),
                ours.od_reward(c.completion, c.truth_answer, score_type=1),
            ),
            "odLength": (
                _quiet(theirs["odLength_reward"], c.completion, sol),
                ours.od_reward(c.completion, c.truth_answer, length_penalty=True),
            ),
            "format": (
                theirs["format_reward"]([[{"content": c.completion}]])[0],
                ours.format_reward(c.completion),
            ),
        }
        for name, (a, b) in pairs.items():
            _spread(name, a)
            if a != b:
                diffs[name].append((c.completion[:120], a, b))
    return [(name, len(cases), len(d), d[:3]) for name, d in diffs.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vlmr1-repo", type=Path, required=True)
    parser.add_argument("--rec", type=int, default=3000)
    parser.add_argument("--ovd", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    theirs = load_theirs(args.vlmr1_repo)
    rows = compare(theirs, args.rec, args.ovd, args.seed)
    print("| reward | rows | VLM-R1 value 0 / in (0,1) / 1 | rows that differ from VLM-R1 |")
    print("|---|---:|---:|---:|")
    for name, n, d, _ in rows:
        spread = " / ".join(str(v) for v in SPREAD.get(name, ["-"]))
        print(f"| {name} | {n} | {spread} | {d} |")
    for name, _, _, examples in rows:
        for text, a, b in examples:
            print(f"  {name}: VLM-R1 {a!r} vs {b!r}: {text!r}")


if __name__ == "__main__":
    main()
