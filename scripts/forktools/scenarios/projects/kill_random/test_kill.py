from __future__ import annotations

import os

import pytest


def test_cache_round_trip(cache: pytest.Cache) -> None:
    token = os.environ.get("SCENARIO_TOKEN", "token")
    cache.set("stress/value", {"token": token})
    assert cache.get("stress/value", None) == {"token": token}
    assert cache.mkdir("stressdir").is_dir()
