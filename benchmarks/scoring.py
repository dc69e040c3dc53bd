"""Difficulty scoring on CPU with a tiny random-weight Qwen2.5-VL: batched hf generation vs one request at a time.

Same samples, same k, same max_new_tokens, so the same number of completions.
Rows: one completion per generate call (the naive loop), one request per call
with num_return_sequences=k, and our batched engine (``--batch`` requests x k
per call). The batched run goes through ``score_recipe`` end to end (images,
prompts, rewards, parquet partitions, catalog merges), and its share of wall
time outside ``model.generate`` is reported. Targets: batched >= 3x the
one-request run; outside-generate share <= 10%.

    .venv/bin/python benchmarks/scoring.py [--samples 64 --k 8 --max-new-tokens 32 --batch 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from curation.difficulty import score_recipe
from curation.fixtures import make_coco
from curation.images import ImageCheck
from curation.ingest import ingest_coco
from curation.quality.recipe import load_recipe
from vlmr1.rollout import Sampling, make_engine
from vlmr1.rollout.base import Request
from vlmr1.tiny import build_tiny_vlm


def one_at_a_time(engine, requests: list[Request], sampling: Sampling, per_call: int) -> float:
    """Wall seconds generating ``sampling.n`` completions per request, ``per_call`` sequences per generate call, one request per call."""
    t0 = time.perf_counter()
    one = Sampling(per_call, sampling.temperature, sampling.top_p, sampling.max_new_tokens, sampling.seed)
    for r in requests:
        for _ in range(sampling.n // per_call):
            engine.generate([r], one)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--model", help="an existing model directory (default: build the tiny Qwen2.5-VL)")
    args = ap.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or str(build_tiny_vlm(tmp / "tiny", "qwen2_5_vl"))
        db = tmp / "c.duckdb"
        ingest_coco(db, make_coco(tmp / "coco", n_images=args.samples), images=ImageCheck([tmp / "coco"]))
        sampling = Sampling(n=args.k, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
        # ignore_eos: a random model would stop at random lengths; fixed lengths make the three rows the same work
        engine = make_engine("hf", model, batch_size=args.batch)
        engine.model.generation_config.min_new_tokens = args.max_new_tokens
        recipe = load_recipe("none")
        t0 = time.perf_counter()
        s = score_recipe(db, recipe, engine, sampling=sampling, partition_size=max(args.batch * 2, 32))
        batched = time.perf_counter() - t0
        from curation import catalog
        from curation.quality.apply import training_candidates
        from vlmr1.prompts import build_messages
        from PIL import Image

        with catalog.connect(db) as con:
            rows = training_candidates(con, recipe)
        requests = [Request([Image.open(r["image_path"]).convert("RGB")], build_messages(r["task"], r["problem"])) for r in rows]
        single = make_engine("hf", model, batch_size=1)
        single.model.generation_config.min_new_tokens = args.max_new_tokens
        per_request = one_at_a_time(single, requests, sampling, per_call=args.k)
        naive = one_at_a_time(single, requests, sampling, per_call=1)
    n = s.completions
    table = Table("way", "completions", "wall s", "completions/s", "tokens/s", "batched is", title=f"hf scoring, tiny Qwen2.5-VL, k={args.k}, {args.max_new_tokens} new tokens")
    for name, secs in (("one completion per generate call", naive), ("one request per call (num_return_sequences=k)", per_request),
                       (f"batched: {args.batch} requests x k per call, through score_recipe", batched)):
        table.add_row(name, str(n), f"{secs:.2f}", f"{n / secs:.1f}", f"{n * args.max_new_tokens / secs:.0f}", f"{secs / batched:.2f}x faster" if secs != batched else "-")
    console.print(table)
    console.print(f"batched run: {s.wall_seconds:.2f} s wall, {s.generate_seconds:.2f} s in model.generate: "
                  f"{s.outside_generate_share:.1%} outside generate (images, prompts, processor, rewards, parquet, catalog)")


if __name__ == "__main__":
    main()
