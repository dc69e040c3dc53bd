"""Difficulty scoring on CPU with a tiny random-weight Qwen2.5-VL: batched hf generation vs one request at a time.

Same samples, same k, same max_new_tokens, so the same number of completions.
Rows: plain ``model.generate`` one completion per call (the naive loop);
plain ``model.generate`` one request per call with num_return_sequences=k
(transformers copies prompt and image k times before the prefill); our
engine one request per call (one prefill per request, its KV cache repeated
k times: the shared prefill alone); our engine batched (``--batch`` requests
x k per call). The batched run goes through ``score_recipe`` end to end
(images, prompts, rewards, parquet partitions, catalog merges), and its share
of wall time outside the engine's generate is reported for it and for a
longer run (``--share-samples``), where the start-up (the first batch's
preprocessing, which nothing can overlap) is spread over more partitions.
Targets: batched >= 3x the one-request run; outside-generate share <= 10%.

``--engines`` adds the engines side by side on the same requests, k and
lengths (every completion exactly ``--max-new-tokens`` long: min_new_tokens
for hf, min_tokens for vLLM): our hf engine, offline vLLM (``vllm.LLM`` in
the vLLM venv) and the managed vLLM server, each started once (start-up time
reported), then ``--rounds`` rounds in rotating order; medians and the
spread (min-max) of the per-round ratios to hf. ``--only-engines`` skips the
hf-only tables.

    .venv/bin/python benchmarks/scoring.py [--samples 64 --k 8 --max-new-tokens 32 --batch 16]
    .venv/bin/python benchmarks/scoring.py --only-engines --samples 32 --k 8 --max-new-tokens 64 --rounds 5
    # on a GPU machine: Qwen2.5-VL-3B's dimensions, random weights, nothing downloaded
    python benchmarks/scoring.py --size 3b --device cuda --dtype bfloat16 --samples 64 --max-new-tokens 256 --batch 16
    --no-naive
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image
from rich.console import Console
from rich.table import Table

from curation import catalog
from curation.demo.fixtures import make_coco
from curation.demo.tiny_model import QWEN2_5_VL_3B, build_tiny_vlm
from curation.difficulty.config import ScorerConfig
from curation.difficulty.scoring import score_recipe
from curation.ingest import ingest
from curation.ingest.images import ImageCheck
from curation.quality.apply import evaluate_recipe
from curation.quality.recipe import load_recipe
from curation.selection.select import candidates as training_candidates
from vlmr1.prompts import build_messages
from vlmr1.rollout import Sampling, make_engine
from vlmr1.rollout.base import Request


def one_at_a_time(engine, requests: list[Request], sampling: Sampling, per_call: int) -> float:
    """Wall seconds of the textbook loop: plain ``model.generate`` on one request, ``per_call`` sequences per call.

    ``num_return_sequences=per_call`` is transformers' own expansion (prompt
    and image copied before the prefill), not our engine's shared prefill.
    """
    import torch

    tok = engine.processor.tokenizer
    t0 = time.perf_counter()
    torch.manual_seed(sampling.seed)
    for r in requests:
        inputs = engine._inputs([r])
        for _ in range(sampling.n // per_call):
            with torch.inference_mode():
                engine.model.generate(
                    **inputs,
                    max_new_tokens=sampling.max_new_tokens,
                    min_new_tokens=sampling.max_new_tokens,
                    num_return_sequences=per_call,
                    do_sample=True,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    top_k=sampling.top_k,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                )
    return time.perf_counter() - t0


def compare_engines(model: str, requests: list[Request], sampling: Sampling, args, console: Console) -> None:
    """hf vs offline vLLM vs the vLLM server: start-up once each, then rounds in rotating order."""
    import statistics
    from contextlib import ExitStack

    from vlmr1.rollout import closing

    fixed = {"min_new_tokens": sampling.max_new_tokens}
    ways, startup = {}, {}
    with ExitStack() as engines:  # every vLLM process stops however the benchmark ends
        for name, kind, options in (
            ("hf (our engine, batched)", "hf", {"batch_size": args.batch, "generation_overrides": fixed}),
            ("vLLM offline (vllm.LLM worker)", "vllm", {"request_overrides": {"min_tokens": sampling.max_new_tokens}}),
            ("vLLM server (managed)", "vllm-server", {"request_overrides": {"min_tokens": sampling.max_new_tokens}}),
        ):
            t0 = time.perf_counter()
            ways[name] = engines.enter_context(closing(make_engine(kind, model, **options)))
            startup[name] = time.perf_counter() - t0
            ways[name].generate(requests[:2], Sampling(n=2, max_new_tokens=sampling.max_new_tokens))  # warm-up
        names, per_round = list(ways), {name: [] for name in ways}
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                t0 = time.perf_counter()
                out = ways[name].generate(requests, Sampling(**{**sampling.to_dict(), "seed": r}))
                secs = time.perf_counter() - t0
                per_round[name].append((sum(map(len, out)) / secs, sum(c.n_tokens for o in out for c in o) / secs))
    table = Table(
        "engine", "start-up s", "completions/s", "tokens/s", "vs hf (median)", "spread (min-max)",
        title=f"{len(requests)} requests x k={sampling.n}, {sampling.max_new_tokens} new tokens each, "
        f"{args.rounds} rounds in rotating order (medians)",
    )  # fmt: skip
    hf = [c for c, _ in per_round[names[0]]]
    for name in names:
        comps, toks = [c for c, _ in per_round[name]], [t for _, t in per_round[name]]
        ratios = [c / h for c, h in zip(comps, hf)]
        table.add_row(
            name, f"{startup[name]:.2f}", f"{statistics.median(comps):.1f}", f"{statistics.median(toks):.0f}",
            f"{statistics.median(ratios):.2f}x", f"{min(ratios):.2f}x-{max(ratios):.2f}x",
        )  # fmt: skip
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument(
        "--share-samples", type=int, default=256, help="a longer batched-only run for the outside-generate share"
    )
    ap.add_argument(
        "--model", help="an existing model directory (default: build a random-weight Qwen2.5-VL of --size)"
    )
    ap.add_argument(
        "--size", choices=["tiny", "3b"], default="tiny", help="3b: Qwen2.5-VL-3B's dimensions, random weights (GPU)"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", help="bfloat16 on GPU")
    ap.add_argument("--no-naive", action="store_true", help="skip the one-completion-per-call row (hours at 3B size)")
    ap.add_argument("--engines", action="store_true", help="also hf vs offline vLLM vs the vLLM server")
    ap.add_argument("--only-engines", action="store_true", help="only the engine comparison")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the engine comparison")
    args = ap.parse_args()
    console = Console(width=150)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or str(
            build_tiny_vlm(
                tmp / "model", "qwen2_5_vl", dims=QWEN2_5_VL_3B if args.size == "3b" else None, dtype=args.dtype
            )
        )
        db = tmp / "c.duckdb"
        ingest("coco", db, make_coco(tmp / "coco", n_images=args.samples), images=ImageCheck([tmp / "coco"]))
        evaluate_recipe(db, load_recipe("none"))
        with catalog.connect(db) as con:
            rows = training_candidates(con, load_recipe("none"))
        requests = [
            Request([Image.open(r["image_path"]).convert("RGB")], build_messages(r["task"], r["problem"]))
            for r in rows
        ]
        sampling = Sampling(n=args.k, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
        if not args.only_engines:
            hf_tables(args, model, tmp, db, requests, sampling, console)
        if args.engines or args.only_engines:
            compare_engines(model, requests, sampling, args, console)


def hf_tables(args, model: str, tmp: Path, db: Path, requests: list[Request], sampling: Sampling, console) -> None:
    """The hf engine against the textbook loops, and its share of time outside generate."""
    # min_new_tokens: a random model would stop at random lengths; fixed lengths make every row the same work
    fixed = {"min_new_tokens": args.max_new_tokens}
    device = {"device": args.device, "dtype": args.dtype}
    engine = make_engine("hf", model, batch_size=args.batch, generation_overrides=fixed, **device)
    recipe = load_recipe("none")
    warm_up = [Request([Image.new("RGB", (320, 240))], build_messages("rec", "a dog"))]  # first-call allocations
    engine.generate(warm_up, Sampling(n=2, max_new_tokens=args.max_new_tokens))
    t0 = time.perf_counter()
    partition_size = max(args.batch * 2, 32)
    s = score_recipe(db, recipe, engine, ScorerConfig(sampling=sampling, partition_size=partition_size))
    batched = time.perf_counter() - t0
    single = make_engine("hf", model, batch_size=1, generation_overrides=fixed, **device)
    single.generate(warm_up, Sampling(n=2, max_new_tokens=args.max_new_tokens))
    per_request = one_at_a_time(single, requests, sampling, per_call=args.k)
    naive = None if args.no_naive else one_at_a_time(single, requests, sampling, per_call=1)
    t0 = time.perf_counter()
    single.generate(requests, sampling)
    shared_one = time.perf_counter() - t0
    long_db = tmp / "long.duckdb"
    coco_long = make_coco(tmp / "coco-long", n_images=args.share_samples)
    ingest("coco", long_db, coco_long, images=ImageCheck([tmp / "coco-long"]))
    long = score_recipe(long_db, recipe, engine, ScorerConfig(sampling=sampling, partition_size=partition_size))
    print_hf_tables(args, console, s, long, partition_size, naive, per_request, shared_one, batched)


def print_hf_tables(args, console, s, long, partition_size, naive, per_request, shared_one, batched) -> None:
    n = s.completions
    table = Table(
        "way",
        "completions",
        "wall s",
        "completions/s",
        "tokens/s",
        "batched speed-up",
        title=f"hf scoring, {args.size} Qwen2.5-VL on {args.device} ({args.dtype}), k={args.k}, {args.max_new_tokens} "
        "new tokens",
    )
    for name, secs in (
        ("one completion per generate call", naive),
        ("one request per call (num_return_sequences=k)", per_request),
        ("our engine, one request per call (shared prefill, no batching)", shared_one),
        (f"batched: {args.batch} requests x k per call, through score_recipe", batched),
    ):
        if secs is None:
            continue
        table.add_row(
            name,
            str(n),
            f"{secs:.2f}",
            f"{n / secs:.1f}",
            f"{n * args.max_new_tokens / secs:.0f}",
            f"{secs / batched:.2f}x" if secs != batched else "-",
        )
    console.print(table)
    share = Table(
        "batched run through score_recipe",
        "samples",
        "partitions",
        "wall s",
        "in generate s",
        "outside generate",
        title="share of wall time outside the engine's generate (images, prompts, processor, rewards, parquet, "
        "catalog)",
    )
    for name, summary in (("the run above", s), ("a longer run", long)):
        share.add_row(
            name,
            str(summary.scored_now),
            str(-(-summary.scored_now // partition_size)),
            f"{summary.wall_seconds:.2f}",
            f"{summary.generate_seconds:.2f}",
            f"{summary.outside_generate_share:.1%}",
        )
    console.print(share)


if __name__ == "__main__":
    main()
