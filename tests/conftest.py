"""Shared test settings: hypothesis profiles sized for a 2-core CI machine, and ``helpers`` importable.

The tests tree mirrors the packages (``tests/vlmr1``, ``tests/curation``, ``tests/training``,
``tests/flows``); ``tests/helpers.py`` holds what several of them share.
"""

import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True
)
settings.load_profile("ci")
