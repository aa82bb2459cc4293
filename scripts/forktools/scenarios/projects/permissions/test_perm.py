"""#12308: one value written under the umask the harness sets."""

from __future__ import annotations

import pytest


def test_sets_a_value(cache: pytest.Cache) -> None:
    cache.set("scenario/perm", {"ok": True})
