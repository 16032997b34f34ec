"""Test configuration: hypothesis runs a fixed set of examples by default.

CI must be reproducible, so the default profile is derandomized (the same
examples on every run, chosen from the test's own strategies). Explore new
examples locally with ``HYPOTHESIS_PROFILE=explore python3 dev.py test``.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Scripts the tests run in a subprocess (they change process-wide settings:
# x64, the device count); `--doctest-modules` must not import them here.
collect_ignore_glob = ["_*_checks.py"]
