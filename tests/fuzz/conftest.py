"""Hypothesis profiles for the fuzz suites: `suite` (bounded, the default, what `make test` runs)
and `fuzz` (many more examples, `make fuzz`). HYPOTHESIS_PROFILE picks one.

Every failure a run finds is kept as an explicit @example on its test, so it stays tested even
where the example database (.hypothesis/, not in git) is gone, as on CI.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# deadline=None: the machine is shared, and timing is never a test's business here
settings.register_profile("suite", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))
