from __future__ import annotations


def test_old() -> None:
    raise AssertionError("failed before")
