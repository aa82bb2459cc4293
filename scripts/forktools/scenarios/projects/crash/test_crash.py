"""A value of its own every run: a write of equal bytes may be skipped, and then
there would be no write to kill."""

from __future__ import annotations

import os

import pytest


def test_sets_a_value(cache: pytest.Cache) -> None:
    value = {"ok": True, "pid": os.getpid()}
    cache.set("scenario/crash", value)
    assert cache.get("scenario/crash", None) == value
