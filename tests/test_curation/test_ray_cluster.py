"""Ray only when asked for: no import otherwise; the --ray options build the RaySpec they say."""

import subprocess
import sys
import textwrap

import pytest

from curation.ray_cluster import RayClusterError, RaySpec, _check_reachable
from flows.cli.options import ray_spec as _ray_spec
from helpers import coco_and_refcoco_catalog, run_vlmr1


def test_without_ray_asked_for_ray_is_never_imported(tmp_path):
    """Ingest with image probing, quality, local scoring config and the flows: `ray` stays out of sys.modules."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import flows.cli, flows.curate, curation.difficulty.ray, curation.difficulty.config
        from curation.ingest.images import ImageCheck
        from curation.ingest import ingest
        from curation.demo.fixtures import make_coco
        root = Path({str(tmp_path)!r})
        ingest("coco", root / "c.duckdb", make_coco(root / "coco", n_images=4), images=ImageCheck([root / "coco"]))
        assert "ray" not in sys.modules, "ray was imported"
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_the_ray_options_build_the_spec_they_say():
    assert _ray_spec(False, None) is None
    assert _ray_spec(True, None) == RaySpec()
    assert _ray_spec(False, "10.0.0.5:6379", 8) == RaySpec(address="10.0.0.5:6379", actors=8)
    with pytest.raises(ValueError, match="--ray-actors: Input should be greater than or equal to 1"):
        _ray_spec(False, None, 0)  # 0 is asked for, not "no Ray": refused, never silently local


def test_an_address_where_no_cluster_answers_is_one_line_at_once(tmp_path):
    with pytest.raises(RayClusterError, match="ray address 127.0.0.1:1: no Ray cluster answers there"):
        _check_reachable("127.0.0.1:1")
    _check_reachable("auto")  # Ray's own lookup, not ours to check
    db = coco_and_refcoco_catalog(tmp_path, 2, 2, recipes=("none",))
    result = run_vlmr1("score", "none", "--catalog", db, "--model", "m", "--ray-address", "127.0.0.1:1", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ray address 127.0.0.1:1: no Ray cluster")
