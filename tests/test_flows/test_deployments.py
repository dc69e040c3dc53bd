"""The demo deployments write apart from each other and from `make demo` (the ablation used to rewrite
`make demo`'s last_run.json, and the first deployment run after `make demo` said only "no new data")."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_every_deployment_has_its_own_output_folder(monkeypatch):
    from flows.serve import deployments

    monkeypatch.delenv("VLMR1_DEMO_OUTPUT", raising=False)
    served = {f"{d.flow_name}/{d.name}": d.parameters["demo_output"] for d in deployments()}
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    listed = {f"{d['entrypoint'].split(':')[1].replace('_', '-')}/{d['name']}": d["parameters"]["demo_output"]
              for d in spec}  # fmt: skip
    assert served == listed and len(set(served.values())) == len(served) == 4
    assert "demo-out/flow" not in served.values()  # `make demo`'s folder
