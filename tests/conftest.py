"""Shared test settings: hypothesis profiles sized for a 2-core CI machine, and ``helpers`` importable.

The tests tree mirrors the packages (``tests/test_vlmr1``, ``tests/test_curation``, ``tests/test_training``,
``tests/test_flows``: not ``tests/vlmr1``, which would shadow the package on ``sys.path``); ``tests/helpers.py``
holds what several of them share.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True
)
settings.load_profile("ci")

# Tiny models are built once per test session and copied (the flows' subprocesses inherit the variable).
_TINY_CACHE = tempfile.mkdtemp(prefix="vlmr1-tiny-models-")
os.environ["VLMR1_TINY_MODEL_CACHE"] = _TINY_CACHE


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_TINY_CACHE, ignore_errors=True)
