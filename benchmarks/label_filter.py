"""Does dropping suspect labels help training? The testbed ablation with wrong labels, with and without the filter.

The testbed's noisy source carries wrong labels of the three audited kinds (wrong referent, inaccurate box,
swapped expression) at a rate whose damage the ablation detects. The start model (the testbed's tiny Qwen2.5-VL,
warm-started 3000 steps: label quality needs a policy that mostly knows the answer, ``benchmarks/label_errors.py``)
scores that source once (k = 8 rollouts, the scoring stage, which computes label quality); then the
``ablation`` flow trains three arms with 3 seeds each (GRPO on DeepSpeed, equal pools, the same budget) and
evaluates all on one fixed evaluation set:

- ``clean``: the clean source (tb-none);
- ``noisy``: the noisy source, nothing dropped (tb-noisy);
- ``noisy-filtered``: the noisy source less what ``suspect_label`` drops (tb-noisy-filtered), nothing else.

Pairs: noisy-filtered vs noisy (must be detectably better), clean vs noisy (the damage), clean vs noisy-filtered
(the gap left), with the statistics of ``benchmarks/ablation_value.py``.

    .venv/bin/python benchmarks/label_filter.py [--out bench-out/label-filter] [--steps 150] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# half of the training refs pointing at another object, a tenth each with a moved box or a swapped expression
SPEC = {"wrong_box": 0.5, "inaccurate_box": 0.1, "swapped_expression": 0.1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-out/label-filter"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--start-steps", type=int, default=3000, help="warm-start steps of the start model")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ.update(PREFECT_HOME=home, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        os.environ.pop("PREFECT_API_URL", None)
        from curation.ablation.arms import Arm, Comparison
        from curation.demo.testbed import TestbedSpec
        from flows.ablation import ablation
        from flows.testbed import testbed_params

        t0 = time.perf_counter()
        params = testbed_params(args.out, seeds=args.seeds, max_steps=args.steps, spec=TestbedSpec(**SPEC),
                                model_steps=args.start_steps)  # fmt: skip
        recipes = {a.name: a.recipe for a in params.arms}
        filtered = str(Path(recipes["noisy"]).with_name("tb-noisy-filtered.yaml"))
        key, dropped = score_noisy(params, recipes["noisy"], filtered)
        seeds = list(range(args.seeds))
        params = params.model_copy(update={
            "arms": [Arm(name="clean", recipe=recipes["clean"], seeds=seeds),
                     Arm(name="noisy", recipe=recipes["noisy"], seeds=seeds),
                     Arm(name="noisy-filtered", recipe=filtered, seeds=seeds)],
            "compare": [Comparison(a="noisy-filtered", b="noisy"),
                        Comparison(a="clean", b="noisy", control="positive"),
                        Comparison(a="clean", b="noisy-filtered")],
            "eval_every": None,
        })  # fmt: skip
        t_prep = time.perf_counter() - t0
        result = ablation(params)
        total = time.perf_counter() - t0
    from ablation_value import show

    show(result, t_prep, total, args)
    print(f"start model's scorer {key}: suspect_label drops {dropped}", file=sys.stderr)
    print("RESULT " + json.dumps({"pairs": result["pairs"], "arms": result["arms"], "dropped": dropped}))


def score_noisy(params, noisy: str, filtered: str) -> tuple[str, dict]:
    """The noisy source scored by the start model (label quality with it); what suspect_label drops, by kind."""
    import duckdb
    import yaml

    from curation.difficulty.config import ScorerConfig
    from curation.quality.apply import evaluate_recipe, flagged_ids
    from curation.quality.recipe import load_recipe
    from flows import stages

    model = yaml.safe_load(Path(params.train_config).read_text())["model"]
    config = ScorerConfig.model_validate({"engine": {"model": model}, "sampling": {"n": 8, "max_new_tokens": 32},
                                          "partition_size": 256})  # fmt: skip
    key = stages.score(params.catalog, load_recipe(noisy), config).counts["scorer"]
    recipe = load_recipe(filtered)
    evaluate_recipe(params.catalog, recipe)
    ids = flagged_ids(params.catalog, recipe.hash, "suspect_label")
    planted = json.loads((Path(params.catalog).parent / "label_errors.json").read_text())
    kinds = {e["ref_id"]: e["kind"] for e in planted}
    con = duckdb.connect(params.catalog, read_only=True)
    rows = con.execute("SELECT sample_id, ref_id FROM samples WHERE source = 'shapes_noisy'").fetchall()
    con.close()
    dropped: dict[str, int] = {}
    for sid, ref in rows:
        if sid in ids:
            kind = kinds.get(ref, "clean")
            dropped[kind] = dropped.get(kind, 0) + 1
    dropped["planted"] = len(planted)
    return key, dropped


if __name__ == "__main__":
    main()
