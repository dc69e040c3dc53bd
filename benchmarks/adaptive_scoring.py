"""Adaptive pass@k against fixed k and SPEED's screen, on simulated catalogs whose true pass rates are known.

Every rule sees the same outcomes (rollout j of sample i passes when u[i, j] < p[i], u drawn once), so an
adaptive run's rollouts are a prefix of a fixed run's, as in the scorer. The adaptive rule sees outcomes only: its
prior is fitted per partition (64 samples, the scorer's default) from the partition's own outcomes so far.

Decision scored: "this sample gives GRPO a learning signal at G = 8" (true when p^8 + (1-p)^8 < 0.5). Each fixed
rule gets the better of its two readings of its counts (band == mixed, or the estimated pass rate inside the same
interval). Bands are scored against the truth (p = 0: all_fail, p = 1: all_pass, else mixed).

Part two, for real: the testbed's tiny warm-started policy (1000 steps, the label-errors benchmark's weak one)
scores the clean testbed source through the scoring stage (hf engine, CPU): fixed k = 8 and ours (k_max 16),
alternated over rounds on fresh copies of the catalog (wall time: median ratio and spread), against a k = 32
reference run for band and decision agreement.

    .venv/bin/python benchmarks/adaptive_scoring.py               # the three mixes, 10,000 samples each
    .venv/bin/python benchmarks/adaptive_scoring.py --real-images 60 [--out bench-out/adaptive]   # and part two
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curation.difficulty.adaptive import AdaptiveConfig, fit_prior, posterior, screen, signal_interval

G = 8
K_MAX = 16
PARTITION = 64
BANDS = ("all_fail", "mixed", "all_pass")


def mix(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """True pass rates: easy (REC by a 3B model: most at or near 1), hard (OVD: most at or near 0), uniform."""
    if name == "uniform":
        return rng.uniform(0, 1, n)
    parts = {"easy": (0.08, 0.55, (6.0, 1.0)), "hard": (0.55, 0.08, (1.0, 6.0))}[name]
    at0, at1, (a, b) = parts
    kind = rng.choice(3, n, p=[at0, at1, 1 - at0 - at1])
    p = np.where(kind == 0, 0.0, np.where(kind == 1, 1.0, rng.beta(a, b, n)))
    spread = rng.uniform(size=n) < 0.3  # a share of the "between" samples anywhere in (0, 1)
    return np.where((kind == 2) & spread, rng.uniform(0, 1, n), p)


def true_band(p: np.ndarray) -> np.ndarray:
    return np.where(p == 0, 0, np.where(p == 1, 2, 1))


def seen_band(s: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.where(s == 0, 0, np.where(s == n, 2, 1))


def has_signal(p: np.ndarray) -> np.ndarray:
    return p**G + (1 - p) ** G < 0.5


def fixed_decision(s, n, truth) -> tuple[np.ndarray, str]:
    """The better of the two readings of counts: band == mixed, or s/n inside the signal interval."""
    lo, hi = signal_interval(G)
    by_band, by_rate = seen_band(s, n) == 1, (s / n > lo) & (s / n < hi)
    return (by_band, "band") if (by_band == truth).mean() >= (by_rate == truth).mean() else (by_rate, "rate")


def run_fixed(u, p, k):
    passed = u[:, :k] < p[:, None]
    return passed.sum(1), np.full(len(p), k)


def run_speed(u, p):
    """SPEED-RL: 4 rollouts to screen; a sample with both outcomes gets 12 more."""
    s4 = (u[:, :4] < p[:, None]).sum(1)
    go_on = (s4 > 0) & (s4 < 4)
    s16 = (u < p[:, None]).sum(1)
    return np.where(go_on, s16, s4), np.where(go_on, 16, 4)


def _outcomes(u, p):
    return lambda i, j: u[i, j] < p[i]


def run_ours(u, p, config: AdaptiveConfig):
    s, n = np.zeros(len(p), int), np.zeros(len(p), int)
    for start in range(0, len(p), PARTITION):
        part = slice(start, start + PARTITION)
        s[part], n[part] = screen(_outcomes(u[part], p[part]), len(p[part]), config, K_MAX, G)
    return s, n


def ours_decision(s, n, config: AdaptiveConfig) -> np.ndarray:
    """Ours decides from its posterior (the prior refitted on the partition's final outcomes)."""
    out = np.zeros(len(s), bool)
    for start in range(0, len(s), PARTITION):
        part = slice(start, start + PARTITION)
        post = posterior(fit_prior(s[part], n[part]), s[part], n[part], G)
        out[part] = post.p_signal >= 0.5
    return out


def scores(name, s, n, decision, p) -> dict:
    truth_band, band = true_band(p), seen_band(s, n)
    row = {"rule": name, "rollouts": n.mean(), "decision acc": (decision == has_signal(p)).mean()}
    for b, label in enumerate(BANDS):
        said, real = band == b, truth_band == b
        row[f"{label} P"] = (said & real).sum() / max(said.sum(), 1)
        row[f"{label} R"] = (said & real).sum() / max(real.sum(), 1)
    return row


def one_mix(
    name: str, samples: int, seed: int, settings, decide: str = "signal"
) -> tuple[list[dict], list[dict], dict]:
    rng = np.random.default_rng(seed)
    p = mix(name, samples, rng)
    u = rng.uniform(size=(samples, K_MAX))
    truth = has_signal(p)
    rows = []
    for label, (s, n) in (("fixed k=8", run_fixed(u, p, 8)), ("fixed k=16", run_fixed(u, p, 16)),
                          ("SPEED 4+12", run_speed(u, p))):  # fmt: skip
        decision, how = fixed_decision(s, n, truth)
        rows.append(scores(f"{label} ({how})", s, n, decision, p))
    curve, kept = [], {}
    for min_gain in settings:
        config = AdaptiveConfig(min_gain=min_gain, decide=decide)
        s, n = run_ours(u, p, config)
        decision = ours_decision(s, n, config)
        curve.append(scores(f"ours gain>{min_gain}", s, n, decision, p))
        kept[min_gain] = (s, n, decision)
    both = AdaptiveConfig(decide="both")  # the scorer's default: the band settled too
    s, n = run_ours(u, p, both)
    rows.append(scores(f"ours, band too (gain>{both.min_gain})", s, n, ours_decision(s, n, both), p))
    return rows, curve, {"p": p, "u": u, "ours": kept}


def losses(p, ours_decision_, fixed16_decision) -> list[tuple]:
    """Decision accuracy by true pass rate: where ours mislabels more often than fixed k = 16."""
    truth = has_signal(p)
    edges = [0, 1e-9, 0.02, 0.05, 0.083, 0.12, 0.2, 0.5, 0.8, 0.88, 0.917, 0.95, 0.98, 1 - 1e-9, 1.0 + 1e-9]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (p >= lo) & (p < hi)
        if m.sum():
            out.append((f"[{lo:.3g}, {min(hi, 1):.3g})", int(m.sum()), (ours_decision_[m] == truth[m]).mean(),
                        (fixed16_decision[m] == truth[m]).mean()))  # fmt: skip
    return out


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return "\n".join(lines)


def _real_catalog(out: Path, images: int) -> str:
    from curation.demo.testbed import CLEAN, TestbedSpec, write_testbed
    from curation.ingest import make_reader
    from curation.ingest.images import ImageCheck
    from curation.ingest.store import ingest_file

    bed = write_testbed(out / "testbed", TestbedSpec(train_images=images, eval_images=10, wrong_box=0.0, seed=5))
    catalog = out / "catalog.duckdb"
    if not catalog.exists():
        for kind, path, root in bed.sources():
            if path.parent.name == CLEAN:
                ingest_file(str(catalog), str(path), make_reader(kind), images=ImageCheck([root]))
    return str(catalog)


def _score_real(catalog: str, model: Path, n: int, adaptive: bool, copy: Path) -> tuple[dict, float, int]:
    """One scoring run on a fresh copy: per sample (k, passes), seconds, completions."""
    import duckdb

    from curation.difficulty.config import ScorerConfig
    from curation.difficulty.dispatch import score_with
    from curation.quality.apply import evaluate_recipe
    from curation.quality.recipe import load_recipe

    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(catalog, copy)
    shutil.rmtree(copy.parent / "scoring", ignore_errors=True)
    evaluate_recipe(str(copy), load_recipe("none"))
    config = ScorerConfig.model_validate({"engine": {"model": str(model), "batch_size": 16}, "group": G,
                                          "sampling": {"n": n, "max_new_tokens": 32}, "partition_size": PARTITION,
                                          **({"adaptive": {}} if adaptive else {})})  # fmt: skip
    t0 = time.perf_counter()
    summary = score_with(str(copy), load_recipe("none"), config)
    seconds = time.perf_counter() - t0
    with duckdb.connect(str(copy), read_only=True) as con:
        rows = con.execute("SELECT sample_id, k, n_pass, p_signal FROM difficulty").fetchall()
    return {r[0]: r[1:] for r in rows}, seconds, summary.completions


def real_part(out: Path, images: int, rounds: int) -> None:
    from curation.demo.testbed_model import build_testbed_model

    out = out.resolve()
    catalog = _real_catalog(out, images)
    model = build_testbed_model(out / "policy-1000-step", steps=1000)
    reference, _, _ = _score_real(catalog, model, 32, False, out / "runs" / "k32" / "c.duckdb")
    ids = sorted(reference)
    ref_s, ref_n = np.array([reference[i][1] for i in ids]), np.array([reference[i][0] for i in ids])
    ref_band = seen_band(ref_s, ref_n)
    lo, hi = signal_interval(G)
    ref_signal = (ref_s / ref_n > lo) & (ref_s / ref_n < hi)
    runs: dict[str, list] = {"fixed k=8": [], "ours (k_max 16)": []}
    for r in range(rounds):  # alternated, so a noisy neighbour slows both
        for name, (n, adaptive) in (("fixed k=8", (8, False)), ("ours (k_max 16)", (16, True))):
            runs[name].append(_score_real(catalog, model, n, adaptive, out / "runs" / f"{name[:5]}-{r}" / "c.duckdb"))
    rows = []
    for name, got in runs.items():
        table_, _, _ = got[0]  # the same rollouts every round: the counts are the first round's
        s, n = np.array([table_[i][1] for i in ids]), np.array([table_[i][0] for i in ids])
        if name.startswith("ours"):
            decision = np.array([table_[i][2] >= 0.5 for i in ids])
        else:
            by_band, by_rate = seen_band(s, n) == 1, (s / n > lo) & (s / n < hi)
            decision = by_band if (by_band == ref_signal).mean() >= (by_rate == ref_signal).mean() else by_rate
        per_sample = [secs / len(ids) for _, secs, _ in got]
        rows.append({"rule": name, "rollouts/sample": n.mean(), "s/sample (median)": float(np.median(per_sample)),
                     "band = k32's": (seen_band(s, n) == ref_band).mean(),
                     "decision = k32's": (decision == ref_signal).mean()})  # fmt: skip
    fixed = [secs for _, secs, _ in runs["fixed k=8"]]
    ours = [secs for _, secs, _ in runs["ours (k_max 16)"]]
    ratios = sorted(f / o for f, o in zip(fixed, ours))
    print(f"\n## the tiny testbed policy for real: {len(ids)} samples, k = 32 reference\n")
    print(table(rows))
    print(
        f"\nwall time fixed k=8 / ours: median {np.median(ratios):.2f}x over {rounds} alternated rounds "
        f"(spread {ratios[0]:.2f}-{ratios[-1]:.2f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mixes", nargs="+", default=["easy", "hard", "uniform"])
    ap.add_argument("--min-gain", type=float, default=0.01, help="the setting the main table reports")
    ap.add_argument("--decide", default="signal", choices=["signal", "band", "both"], help="what ours settles")
    ap.add_argument("--real-images", type=int, default=0, help="part two on this many testbed images (0: skip)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench-out/adaptive"))
    args = ap.parse_args()
    settings = sorted({0.003, 0.006, 0.01, 0.02, 0.04, args.min_gain})
    for name in args.mixes:
        t0 = time.perf_counter()
        rows, curve, kept = one_mix(name, args.samples, args.seed, settings, args.decide)
        main_row = next(r for r in curve if r["rule"] == f"ours gain>{args.min_gain}")
        print(
            f"\n## {name} mix: {args.samples} samples, G = {G}, k_max = {K_MAX} ({time.perf_counter() - t0:.0f} s)\n"
        )
        print(table(rows[:3] + [main_row] + rows[3:]))
        k16 = next(r for r in rows if r["rule"].startswith("fixed k=16"))
        k8 = next(r for r in rows if r["rule"].startswith("fixed k=8"))
        print(
            f"\nours vs fixed k=16: {k16['rollouts'] / main_row['rollouts']:.2f}x fewer rollouts, decision accuracy "
            f"{main_row['decision acc'] - k16['decision acc']:+.4f}; vs fixed k=8: "
            f"{k8['rollouts'] / main_row['rollouts']:.2f}x fewer, {main_row['decision acc'] - k8['decision acc']:+.4f}"
        )
        print("\ntrade-off (ours over its min_gain):\n")
        print(table([{k: r[k] for k in ("rule", "rollouts", "decision acc")} for r in curve]))
        p, u = kept["p"], kept["u"]
        s16, n16 = run_fixed(u, p, 16)
        d16, _ = fixed_decision(s16, n16, has_signal(p))
        print("\nwhere it loses: decision accuracy by true pass rate, ours vs fixed k=16:\n")
        loss_rows = [{"true p": a, "samples": b, "ours": c, "fixed k=16": d}
                     for a, b, c, d in losses(p, kept["ours"][args.min_gain][2], d16)]  # fmt: skip
        print(table(loss_rows))

    if args.real_images:
        real_part(args.out, args.real_images, args.rounds)


if __name__ == "__main__":
    main()
