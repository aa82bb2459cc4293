from __future__ import annotations

import pytest


@pytest.mark.parametrize("i", range(3))
def test_after_the_cache_exists(i: int) -> None:
    pass
