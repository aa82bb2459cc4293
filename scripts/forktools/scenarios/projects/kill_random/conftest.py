"""Counts the write-side filesystem calls that touch the cache and kills the process
right before call number ``SCENARIO_KILL_AT`` (0: never; the count is then saved).

A call touches the cache when a path it gets holds ``.pytest_cache`` or
``pytest-cache-files-``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
import io
import os
from typing import Any

from barriers import touch

import pytest


KILL_AT = int(os.environ.get("SCENARIO_KILL_AT", "0"))
KILLED_EXIT = int(os.environ.get("SCENARIO_KILLED_EXIT", "86"))
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT
_calls = [0]


def _cache_path(path: Any) -> str | None:
    if isinstance(path, int):
        return None
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        return None
    if ".pytest_cache" in text or "pytest-cache-files-" in text:
        return text
    return None


def _count(kind: str, *paths: Any) -> None:
    hits = [p for p in map(_cache_path, paths) if p is not None]
    if not hits:
        return
    _calls[0] += 1
    if _calls[0] == KILL_AT:
        touch(f"killed-{_calls[0]}-{kind}")
        os._exit(KILLED_EXIT)


def _counting(kind: str, real: Callable[..., Any], nargs: int) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        _count(kind, *args[:nargs])
        return real(*args, **kwargs)

    return call


def _counting_os_open(real: Callable[..., int]) -> Callable[..., int]:
    def call(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & _WRITE_FLAGS:
            _count("os.open", path)
        return real(path, flags, *args, **kwargs)

    return call


def _counting_io_open(real: Callable[..., Any]) -> Callable[..., Any]:
    def call(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wxa+"):
            _count("open", file)
        return real(file, mode, *args, **kwargs)

    return call


for _name, _nargs in (
    ("mkdir", 1),
    ("rename", 2),
    ("replace", 2),
    ("link", 2),
    ("unlink", 1),
    ("rmdir", 1),
    ("chmod", 1),
):
    setattr(os, _name, _counting("os." + _name, getattr(os, _name), _nargs))
os.open = _counting_os_open(os.open)
io.open = builtins.open = _counting_io_open(io.open)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    touch(f"fs-calls-{_calls[0]}")
