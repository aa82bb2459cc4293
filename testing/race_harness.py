"""What the cache tests share to tell a reproduced bug from a harness failure.

A test that guards a layer (``@pytest.mark.layer("<fix>")``) states the damage
it looks for in its assertion message, prefixed with ``[<fix>]``: the mutation
proof (``scripts/mutations.py``) accepts a failure without that layer only
when it is an ``AssertionError`` carrying that prefix.  Anything that means
"the race could not be forced" (a barrier that timed out, too few workers)
raises :class:`HarnessError` instead, which is never counted as the bug.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


class HarnessError(Exception):
    """The harness could not force the interleaving: no verdict on the code under test."""


def require(condition: object, message: str) -> None:
    """Raise :class:`HarnessError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise HarnessError(message)


def unavailable(reason: str) -> NoReturn:
    """Skip a test this machine cannot run; on CI (``CI`` set) fail instead: CI must run it."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"CI must run this test, but: {reason}")
    pytest.skip(reason)
