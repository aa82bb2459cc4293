from __future__ import annotations

from typing import Any

import pytest


OLD = {"generation": "old", "payload": "o" * 4000}
NEW = {"generation": "new", "payload": "n" * 4000}


def test_writer(cache: pytest.Cache, half_write: Any) -> None:
    cache.set("scenario/torn", OLD)
    half_write.armed = True
    cache.set("scenario/torn", NEW)
    assert not half_write.armed, "the write was not intercepted"
    assert cache.get("scenario/torn", None) == NEW
