from __future__ import annotations

import json

from barriers import exists
from barriers import HERE
from barriers import touch
from barriers import wait_until

import pytest


def test_reader(cache: pytest.Cache) -> None:
    wait_until(lambda: exists("half-written"), "half-written")
    value = cache.get("scenario/torn", "DEFAULT")
    seen = value.get("generation", "?") if isinstance(value, dict) else value
    (HERE / "reader-saw.json").write_text(json.dumps(seen))
    touch("reader-done")
