"""Rewards over JSON lines ``{"completion", "solution", "width", "height"[, "task", "resized_*"]}``: what
``vlmr1 rewards score`` reads, validated row by row (an error names the file and line), scored in batches."""

from __future__ import annotations

import json
from typing import IO, Iterator

from vlmr1.boxes import BoxFrame
from vlmr1.records import parse_solution
from vlmr1.rewards import get_reward, score_rows


def reward_row(line: str, where: str) -> dict:
    """One input row, validated; errors name the file and line."""
    try:
        row = json.loads(line)
    except RecursionError:
        raise ValueError(f"{where}: nested too deeply to be a reward row") from None
    except ValueError as exc:
        raise ValueError(f"{where}: not JSON: {exc}") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object")
    for key in ("solution", "width", "height"):
        if key not in row:
            raise ValueError(f"{where}: missing field {key!r}")
    if not isinstance(row.get("completion", ""), str):
        raise ValueError(f"{where}: completion must be a string")
    for key in ("width", "height", "resized_width", "resized_height"):
        if key in row and (not isinstance(row[key], int) or isinstance(row[key], bool) or row[key] <= 0):
            raise ValueError(f"{where}: {key} must be a positive integer, got {row[key]!r}")
    if row.get("task", "rec") not in ("rec", "ovd"):
        raise ValueError(f"{where}: task must be 'rec' or 'ovd', got {row['task']!r}")
    if ("resized_width" in row) != ("resized_height" in row):
        raise ValueError(f"{where}: give both resized_width and resized_height, or neither")
    row["solution"] = parse_solution(row["solution"], f"{where}: solution")
    return row


def score_lines(reward: str, stream: IO[str], name: str, frame: BoxFrame, batch_size: int = 4096) -> Iterator:
    """The reward of each non-empty line, in order (None for a row of the other task, as TRL's marker); a bad line
    stops with a ValueError naming ``name`` and its line number, after the rows before it were yielded."""
    get_reward(reward)
    pending: list[dict] = []
    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            continue
        pending.append(reward_row(line, f"{name}:{lineno}"))
        if len(pending) >= batch_size:
            yield from score_rows(reward, pending, frame)
            pending.clear()
    yield from score_rows(reward, pending, frame)
