"""#6423: session A signals it is completely done (its lastfailed written) only in
``pytest_unconfigure``."""

from __future__ import annotations

import os

from barriers import touch

import pytest


ROLE = os.environ.get("SCENARIO_ROLE", "")


def pytest_unconfigure(config: pytest.Config) -> None:
    if ROLE == "A":
        touch("A-done")
