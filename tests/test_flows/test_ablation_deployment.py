"""The ablation deployment through a real Prefect server: ``prefect deployment run ablation/demo`` from an empty
folder (the demo inputs built, curated and scored, then none vs default trained and compared). A module of its own,
so it runs beside test_flows.py's deployments under pytest-xdist."""

import json

import pytest

from helpers import prefect_cli, served_prefect

pytestmark = pytest.mark.slow  # a real Prefect server, worker and deployments


@pytest.fixture(scope="module")
def prefect(tmp_path_factory):
    yield from served_prefect(tmp_path_factory.mktemp("prefect-home"))


def test_ablation_deployment_compares_recipes_on_equal_pools(prefect):
    """none vs default, 2 seeds each, on one fixed evaluation set: intervals and a verdict per pair and metric,
    REC and OVD tables apart, the plot as an image artifact."""
    out = prefect.home / "ablation"  # from nothing: the demo inputs, their catalog curated and scored, then the arms
    r = prefect_cli(prefect.env, "deployment", "run", "ablation/demo", "--param", f"demo_output={out}", "--watch")
    assert r.returncode == 0 and "Completed" in r.stdout, r.stdout[-3000:]
    comparison = json.loads((out / "ablation" / "comparison" / "comparison.json").read_text())
    arms = comparison["arms"]
    assert {a["arm"] for a in arms} == {"none", "default"} and {a["seeds"] for a in arms} == {2}
    assert len({a["pool_size"] for a in arms}) == 1 and all(a["low"] <= a["value"] <= a["high"] for a in arms)
    assert {(a["task"], a["metric"]) for a in arms} >= {("rec", "acc@0.5"), ("ovd", "mAP")}
    assert all((a["task"] == "rec") == (a["metric"] in ("acc@0.5", "mean_iou")) for a in arms)
    pairs = comparison["pairs"]
    assert pairs and all(p["a"] == "default" and p["b"] == "none" and p["verdict"] for p in pairs)
    rec = prefect_cli(prefect.env, "artifact", "inspect", "ablation-arms-rec").stdout
    assert "acc@0.5" in rec and "mAP" not in rec
    plot = prefect_cli(prefect.env, "artifact", "inspect", "ablation-comparison-plot").stdout
    assert "data:image/png;base64," in plot
    evaluations = {
        json.loads(p.read_text())["data"] for p in (out / "ablation" / "train").glob("*/seed*/final/eval/*.json")
    }
    assert evaluations == {"eval"}, "every arm and seed is evaluated on the one evaluation set"
    assert (out / "ablation" / "comparison" / "comparison.png").exists()
