"""Shared test settings: hypothesis profiles sized for a 2-core CI machine, and ``helpers`` importable.

The tests tree mirrors the packages (``tests/test_vlmr1``, ``tests/test_curation``, ``tests/test_training``,
``tests/test_flows``: not ``tests/vlmr1``, which would shadow the package on ``sys.path``); ``tests/helpers.py``
holds what several of them share.
"""

import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True
)
settings.load_profile("ci")
