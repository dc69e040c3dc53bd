"""Serve the deployments from this process (no work pool needed): ``python -m flows.serve``.

``curate-and-train/demo`` (fixtures + tiny model, CPU), ``curate-and-train/nightly``
(cron, incremental: set its parameters to your sources) and ``ablation/demo``.
`make serve` runs the same deployments through a process work pool instead
(prefect.yaml). Output of the demo deployments goes to ``$VLMR1_DEMO_OUTPUT``
(default ``demo-out``), one folder per deployment and apart from ``make demo``'s ``demo-out/flow``, unless a run
overrides ``demo_output``.
"""

from __future__ import annotations

import os

from prefect import serve

from flows.ablation import ablation
from flows.curate import curate_and_train


def deployments():
    out = os.environ.get("VLMR1_DEMO_OUTPUT", "demo-out")
    return [
        curate_and_train.to_deployment(
            name="demo", parameters={"demo": True, "demo_output": f"{out}/curate-and-train-demo"}
        ),
        curate_and_train.to_deployment(
            name="nightly",
            cron="0 3 * * *",
            parameters={"demo": True, "demo_output": f"{out}/nightly"},
            description="Incremental retraining: set params to your sources; unchanged sources finish as 'no new "
            "data'.",
        ),
        ablation.to_deployment(name="demo", parameters={"demo": True, "demo_output": f"{out}/ablation-demo"}),
        ablation.to_deployment(
            name="testbed",
            parameters={"testbed": True, "demo_output": f"{out}/testbed"},
            description="The learnable testbed: 3 seeds per arm, positive and negative controls, default vs none.",
        ),
    ]


if __name__ == "__main__":
    serve(*deployments())
