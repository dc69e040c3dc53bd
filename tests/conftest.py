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

# One OpenMP thread per process: two workers plus the servers, trainers and flows they start oversubscribed 2 cores,
# and torch's spinning OpenMP threads made a 2 s evaluation take 25 s. Measured: the suite 19:16 -> 13:41 of pytest
# (docs/tests.md). Inherited by every subprocess; a user's own runs are untouched.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Tiny models are built once per test run and copied (the flows' subprocesses inherit the variable). Under
# pytest-xdist the controller makes the folder before it starts the workers, which inherit it and share it
# (`build_tiny_vlm` renames a finished build into place, so two workers never see half a model); the process that
# made it removes it.
_OWNED = "VLMR1_TINY_MODEL_CACHE" not in os.environ
if _OWNED:
    os.environ["VLMR1_TINY_MODEL_CACHE"] = tempfile.mkdtemp(prefix="vlmr1-tiny-models-")


def pytest_sessionfinish(session, exitstatus):
    if _OWNED:
        shutil.rmtree(os.environ["VLMR1_TINY_MODEL_CACHE"], ignore_errors=True)


# The modules that take minutes, longest first. Under `make test` (pytest-xdist, 2 workers, one module per worker
# at a time, `--no-loadscope-reorder` so xdist keeps this order instead of its most-tests-first) they start first,
# and the short modules fill in beside them instead of leaving one worker alone with a long module at the end.
# Serial runs keep the same order; modules never depend on each other's order.
LONG_FIRST = (
    "test_flows/test_flows.py",
    "test_vlmr1/test_vllm.py",
    "test_flows/test_readme.py",
    "test_training/test_training.py",
    "test_flows/test_faces.py",
    "test_curation/test_difficulty.py",
    "test_flows/test_schedule.py",
    "test_curation/test_ray.py",
    "test_curation/test_rounds.py",
)


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return next((i for i, name in enumerate(LONG_FIRST) if path.endswith(name)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: the order inside a module is kept
