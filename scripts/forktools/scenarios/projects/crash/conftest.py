"""Kills the process while the cache dir is being published or a value replaced.

``SCENARIO_KILL=publish``: at a rename onto ``.pytest_cache``; ``set``: at a
rename onto a file below ``.pytest_cache/v/``.
"""

from __future__ import annotations

from collections.abc import Callable
import os
from typing import Any

from barriers import touch


KILL = os.environ.get("SCENARIO_KILL", "")
KILLED_EXIT = int(os.environ.get("SCENARIO_KILLED_EXIT", "86"))


def _is_target(dst: Any) -> bool:
    path = os.path.abspath(os.fsdecode(os.fspath(dst)))
    if KILL == "publish":
        return os.path.basename(path) == ".pytest_cache"
    if KILL == "set":
        return (os.sep + ".pytest_cache" + os.sep + "v" + os.sep) in path
    return False


def _kill_on_target(real: Callable[..., Any]) -> Callable[..., Any]:
    def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        if _is_target(dst):
            touch("killed-" + KILL)
            os._exit(KILLED_EXIT)
        return real(src, dst, *args, **kwargs)

    return rename


if KILL:
    os.rename = _kill_on_target(os.rename)
    os.replace = _kill_on_target(os.replace)
