"""Can the ablation tell an effect from seed noise? The testbed ablation end to end on CPU, with its controls.

The learnable testbed (``curation.demo.testbed``: shape scenes as real RefCOCO files, defects planted at known
rates) and its warm-started tiny Qwen2.5-VL are built, ingested and curated; then the ``ablation`` flow trains
every arm with 3 seeds (GRPO on DeepSpeed, the same budget and pool size) and evaluates all of them on one fixed
evaluation set:

- positive control: ``clean`` vs ``noisy`` (the same refs, ~90% pointing at another object): must be detected;
- negative control: ``clean`` vs ``clean-again`` (the same recipe, three other seeds): must not be;
- ``default`` vs ``clean`` (tb-none): reported whatever it shows.

``--scaling 200 400`` adds the clean recipe at those pool sizes (a data-scaling curve). The Prefect home is a
temporary folder (nothing touches ~/.prefect); the outputs stay in ``--out``.

    .venv/bin/python benchmarks/ablation_value.py [--out bench-out/ablation] [--steps 150] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the `flows` package, not benchmarks/flows.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-out/ablation"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--scaling", type=int, nargs="*", default=[])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ.update(PREFECT_HOME=home, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        os.environ.pop("PREFECT_API_URL", None)
        from flows.ablation import ablation
        from flows.testbed import testbed_params

        t0 = time.perf_counter()
        params = testbed_params(args.out, seeds=args.seeds, max_steps=args.steps)
        if args.scaling:
            params = params.model_copy(update={"pool_sizes": args.scaling})
        t_prep = time.perf_counter() - t0
        result = ablation(params)
        total = time.perf_counter() - t0
    show(result, t_prep, total, args)


def show(result: dict, t_prep: float, total: float, args) -> None:
    console = Console(width=160)
    t = Table(title="controls (primary metric: REC Acc@0.5 per evaluation split)")
    for col in ("control", "pair", "split", "must show", "verdict", "passed"):
        t.add_column(col)
    for c in result["controls"]:
        t.add_row(c["control"], c["pair"], c["split"], c["must_show"], c["verdict"], "yes" if c["passed"] else "NO")
    console.print(t)
    t = Table(title="paired differences a - b (95% interval over seeds and evaluation samples)")
    for col in ("a", "b", "split", "metric", "difference", "interval", "verdict"):
        t.add_column(col)
    for p in result["pairs"]:
        t.add_row(p["a"], p["b"], p["split"], p["metric"], f"{p['difference']:+.3f}",
                  f"[{p['low']:+.3f}, {p['high']:+.3f}]", p["verdict"])  # fmt: skip
    console.print(t)
    t = Table(title="arms (mean over seeds, 95% interval)")
    for col in ("arm", "split", "metric", "value", "interval", "seeds", "pool", "leaked"):
        t.add_column(col)
    for a in result["arms"]:
        t.add_row(a["arm"], a["split"], a["metric"], f"{a['value']:.3f}", f"[{a['low']:.3f}, {a['high']:.3f}]",
                  str(a["seeds"]), str(a["pool_size"]), str(a["leaked"]))  # fmt: skip
    console.print(t)
    train = sum(s.get("seconds", 0) for s in result["stages"] if s["stage"] == "train")
    console.print(
        f"{args.seeds} seeds, {args.steps} GRPO steps per run; testbed + warm start + ingest {t_prep:.0f} s, "
        f"training {train:.0f} s, total {total:.0f} s on {os.cpu_count()} cores; report {result['files']['plot']}"
    )
    print("RESULT " + json.dumps({"controls": result["controls"], "total_s": round(total)}), file=sys.stderr)


if __name__ == "__main__":
    main()
