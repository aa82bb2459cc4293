"""#12381: every worker announces itself, waits for all the others, then creates the cache dir.

A rename onto ``.pytest_cache`` is held until every worker that announced itself
is renaming too or is done (a release that creates in place never renames, and
nobody waits for it).
"""

from __future__ import annotations

from collections.abc import Callable
import os
from typing import Any

from barriers import names
from barriers import touch
from barriers import wait_until
from barriers import WORKER

import pytest


WORKERS = int(os.environ["SCENARIO_WORKERS"])


def _hold_until_everyone_renames(real: Callable[..., Any]) -> Callable[..., Any]:
    def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        if os.path.basename(os.fspath(dst)) == ".pytest_cache":
            touch("rename-" + WORKER)
            wait_until(
                lambda: names("arrive-") <= names("rename-") | names("done-"),
                "rename",
            )
        return real(src, dst, *args, **kwargs)

    return rename


if WORKER:
    os.rename = _hold_until_everyone_renames(os.rename)
    os.replace = _hold_until_everyone_renames(os.replace)


@pytest.fixture(scope="session", autouse=True)
def _race_for_the_cache_dir(request: pytest.FixtureRequest) -> None:
    touch("arrive-" + WORKER)
    wait_until(lambda: len(names("arrive-")) >= WORKERS, "arrive")
    try:
        request.config.cache.mkdir("race")  # type: ignore[union-attr]
    finally:
        touch("done-" + WORKER)
