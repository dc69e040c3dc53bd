"""The testbed ablation's parameters: the testbed written and ingested, the warm-started model, a GRPO config,
and the arms with their controls. What ``benchmarks/ablation_value.py`` and the ``ablation/testbed`` deployment
run.

Arms (3 seeds each, equal pools, the same budget):
- ``clean`` (tb-none: every clean-source ref, planted defects included) and ``noisy`` (the same refs, about 90%
  pointing at another object): the positive control, a difference the ablation must detect;
- ``clean-again`` (tb-none with three other seeds): the negative control, no difference allowed;
- ``default`` (tb-default: the defects the default recipe drops): default vs none, reported whatever it shows.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from curation.ablation.arms import Arm, Comparison
from curation.demo.testbed import TestbedSpec, write_testbed
from curation.demo.testbed_model import build_testbed_model
from flows.params import AblationParams


def write_testbed_config(path: Path, model: Path, max_steps: int) -> Path:
    """GRPO on CPU for the testbed: 8 prompts x 4 completions a step, a learning rate that moves a tiny model."""
    cfg = {
        "model": str(model),
        "num_generations": 4,
        "per_device_train_batch_size": 32,
        "max_completion_length": 32,
        "learning_rate": 2.5e-4,
        "beta": 0.0,
        "max_steps": max_steps,
        "save_steps": max_steps,
        "seed": 0,
        "rewards": {"iou": 1.0, "format": 1.0},
        "deepspeed": "zero2",
        "use_cpu": True,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def testbed_params(
    out: Path, seeds: int = 3, max_steps: int = 150, spec: TestbedSpec | None = None, model_steps: int = 1000
) -> AblationParams:
    """Write (once) the testbed, its model (warm-started ``model_steps`` steps) and catalog under ``out``; the
    ablation's parameters."""
    from curation.ingest import make_reader
    from curation.ingest.images import ImageCheck
    from curation.ingest.store import ingest_file

    out = Path(out).resolve()
    bed = write_testbed(out / "testbed", spec)
    model = build_testbed_model(out / "testbed-model", steps=model_steps)
    catalog = out / "testbed" / "catalog.duckdb"
    for kind, path, images in bed.sources():
        ingest_file(str(catalog), str(path), make_reader(kind), images=ImageCheck([images]))
    first, other = list(range(seeds)), list(range(seeds, 2 * seeds))
    recipes = {name: str(p) for name, p in bed.recipes.items()}
    arms = [
        Arm(name="clean", recipe=recipes["tb-none"], seeds=first),
        Arm(name="noisy", recipe=recipes["tb-noisy"], seeds=first),
        Arm(name="clean-again", recipe=recipes["tb-none"], seeds=other),
        Arm(name="default", recipe=recipes["tb-default"], seeds=first),
    ]
    compare = [
        Comparison(a="clean", b="noisy", control="positive"),
        Comparison(a="clean", b="clean-again", control="negative"),
        Comparison(a="default", b="clean"),
    ]
    return AblationParams(
        catalog=str(catalog),
        output=str(out / "ablation"),
        train_config=str(write_testbed_config(out / "testbed-train.yaml", model, max_steps)),
        arms=arms,
        compare=compare,
        seeds=first,
        eval_recipe="default",
        eval_every=max(max_steps // 3, 1),
    )
