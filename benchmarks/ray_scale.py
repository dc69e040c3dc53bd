"""Ray on one machine: image probing of many real JPEG files and difficulty scoring, local vs Ray, side by side.

Probing (sha256 + 64-bit pHash of every file, what ingest does): our thread
pool (``probe_many``) vs Ray Data with an actor pool of 1 and 2 actors
(``probe_many_ray``), on ``--images`` generated JPEGs. Scoring: the local
scorer vs ``score_recipe_ray`` with 1 and 2 actors on the tiny model, same
samples, k and lengths. The ways alternate over ``--rounds`` rounds in
rotating order; the table has medians, the spread of the ratio to local,
and the one-off cost of starting the local Ray cluster. Every way's result
is checked equal to the local one's.

    .venv/bin/python benchmarks/ray_scale.py --images 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table


def write_jpegs(root: Path, n: int) -> list[str]:
    """``n`` distinct small JPEG files (noise plus a rectangle), written on a thread pool."""
    root.mkdir(parents=True)

    def one(i: int) -> str:
        rng = np.random.default_rng(i)
        pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        x, y = int(rng.integers(0, 40)), int(rng.integers(0, 24))
        pixels[y : y + 20, x : x + 20] = rng.integers(0, 255, 3)
        path = root / f"{i // 1000:03d}" / f"{i:07d}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(path, quality=90)
        return str(path)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(n), chunksize=256))


def rounds(ways: dict, n_rounds: int) -> dict[str, list[float]]:
    """Wall seconds of every way in every round; the order rotates each round."""
    names, seconds = list(ways), {name: [] for name in ways}
    for r in range(n_rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            ways[name]()
            seconds[name].append(time.perf_counter() - t0)
    return seconds


def table(title: str, unit: int, unit_name: str, seconds: dict[str, list[float]], startup: float) -> Table:
    out = Table("way", "median wall s", f"{unit_name}/s", "vs local (median)", "spread (min-max)", title=title)
    local = seconds[next(iter(seconds))]
    for name, secs in seconds.items():
        ratios = [lo / s for lo, s in zip(local, secs)]
        out.add_row(
            name, f"{statistics.median(secs):.2f}", f"{unit / statistics.median(secs):.0f}",
            f"{statistics.median(ratios):.2f}x", f"{min(ratios):.2f}x-{max(ratios):.2f}x",
        )  # fmt: skip
    out.caption = f"starting the local Ray cluster and connecting: {startup:.1f} s (once, not in the rows)"
    return out


def probing(args, tmp: Path, console: Console, startup: float) -> None:
    from curation.ingest.images import probe_many, probe_many_ray, probe_table
    from curation.ray_cluster import RaySpec

    t0 = time.perf_counter()
    paths = write_jpegs(tmp / "jpegs", args.images)
    console.print(f"{len(paths)} JPEG files written in {time.perf_counter() - t0:.1f} s")
    expected = probe_table(probe_many(paths))
    opts = {"verify": False, "max_pixels": 89_478_485}
    ways = {
        "thread pool (probe_many)": lambda: probe_many(paths),
        "Ray Data, 1 actor": lambda: probe_many_ray(paths, ray_spec=RaySpec(actors=1), **opts),
        "Ray Data, 2 actors": lambda: probe_many_ray(paths, ray_spec=RaySpec(actors=2), **opts),
    }
    for name in list(ways)[1:]:
        assert ways[name]().equals(expected), name
    title = f"image probing, {len(paths)} JPEGs (sha256 + pHash), {args.rounds} rounds"
    console.print(table(title, len(paths), "images", rounds(ways, args.rounds), startup))


def scoring(args, tmp: Path, console: Console, startup: float) -> None:
    from curation.demo.fixtures import make_coco
    from curation.demo.tiny_model import build_tiny_vlm
    from curation.difficulty.config import ScorerConfig
    from curation.difficulty.ray import score_recipe_ray
    from curation.difficulty.scoring import score_recipe
    from curation.ingest import ingest
    from curation.ingest.images import ImageCheck
    from curation.quality.apply import evaluate_recipe
    from curation.quality.recipe import load_recipe
    from curation.ray_cluster import RaySpec
    from vlmr1.rollout import Sampling, make_engine
    from vlmr1.rollout.spec import EngineSpec

    model = build_tiny_vlm(tmp / "model", "qwen2_5_vl")
    db = tmp / "c.duckdb"
    ingest("coco", db, make_coco(tmp / "coco", n_images=args.samples), images=ImageCheck([tmp / "coco"]))
    evaluate_recipe(db, load_recipe("none"))
    sampling, runs = Sampling(n=args.k, max_new_tokens=args.max_new_tokens), iter(range(10**6))
    engine = make_engine("hf", str(model), batch_size=8)
    spec = EngineSpec(model=str(model), batch_size=8)

    def fresh() -> Path:  # a copy of the unscored catalog per run
        path = tmp / f"run-{next(runs)}" / "c.duckdb"
        path.parent.mkdir()
        shutil.copy(db, path)
        return path

    def config(actors: int | None = None) -> ScorerConfig:
        return ScorerConfig(sampling=sampling, partition_size=16, ray=RaySpec(actors=actors) if actors else None)

    ways = {
        "local scorer (hf, batch 8)": lambda: score_recipe(fresh(), load_recipe("none"), engine, config()),
        "Ray, 1 actor": lambda: score_recipe_ray(fresh(), load_recipe("none"), spec, config(1)),
        "Ray, 2 actors": lambda: score_recipe_ray(fresh(), load_recipe("none"), spec, config(2)),
    }
    title = (
        f"difficulty scoring, {args.samples} samples x k={args.k}, {args.max_new_tokens} new tokens, tiny "
        f"Qwen2.5-VL, {args.rounds} rounds (Ray rows include building the actors' engines)"
    )
    console.print(table(title, args.samples, "samples", rounds(ways, args.rounds), startup))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    console = Console(width=150)
    from curation.ray_cluster import RaySpec, connect

    t0 = time.perf_counter()
    connect(RaySpec())
    startup = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        probing(args, Path(tmp), console, startup)
        scoring(args, Path(tmp), console, startup)


if __name__ == "__main__":
    main()
