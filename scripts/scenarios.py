"""The racing scenarios, by their old name: they live in ``forktools.scenarios``.

Our race tests (``testing/test_cacheprovider_races.py``) put ``scripts/`` on the
path and ``import scenarios``; this keeps that import working.
"""

from __future__ import annotations

from forktools.scenarios import MATRIX_SCENARIOS
from forktools.scenarios import Outcome
from forktools.scenarios import run_scenario
from forktools.scenarios import SCENARIOS
from forktools.scenarios import Verdict


__all__ = ["MATRIX_SCENARIOS", "SCENARIOS", "Outcome", "Verdict", "run_scenario"]
