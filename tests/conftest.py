"""Settings for the whole test suite."""

from __future__ import annotations

import os

from tunedag.imports import ENV_ALLOWED

# The tests name their own estimators, train_fns and module factories (tests.support, tests.tunedag.nets):
# the test package is allowed as a user would allow theirs (model.allowed_modules, or this variable).
os.environ.setdefault(ENV_ALLOWED, "tests")
