from __future__ import annotations

import os

import pytest


@pytest.mark.parametrize("i", range(2 * int(os.environ["SCENARIO_WORKERS"])))
def test_uses_the_cache(i: int) -> None:
    pass
