"""Ray only when asked for: no import otherwise; the --ray options build the RaySpec they say."""

import subprocess
import sys
import textwrap

import pytest

from curation.ray_cluster import RaySpec
from flows.cli import _ray_spec


def test_without_ray_asked_for_ray_is_never_imported(tmp_path):
    """Ingest with image probing, quality, local scoring config and the flows: `ray` stays out of sys.modules."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import flows.cli, flows.curate, curation.ray_scoring, curation.scorer_config
        from curation.images import ImageCheck
        from curation.ingest import ingest
        from curation.testing.fixtures import make_coco
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
    with pytest.raises(ValueError):
        RaySpec(actors=0)
