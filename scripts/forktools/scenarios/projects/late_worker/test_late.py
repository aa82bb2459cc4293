from __future__ import annotations

import os

from barriers import CACHE_DIR
from barriers import touch
from barriers import wait_until
from barriers import WORKER

import pytest


VALUE = CACHE_DIR / "v" / "scenario" / "kept"


def test_sets_a_value(cache: pytest.Cache) -> None:
    cache.set("scenario/kept", {"by": WORKER})
    assert VALUE.is_file()


def test_crashes_its_worker_once_the_value_is_on_disk() -> None:
    wait_until(VALUE.is_file, "value-on-disk")
    touch("crashing-" + WORKER)
    os._exit(1)
