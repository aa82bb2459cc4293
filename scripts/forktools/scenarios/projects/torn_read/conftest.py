"""The writer's next write-mode ``Path.open`` in ``v/scenario`` is held half-way.

It writes half its data (to the value file itself or a sibling temp file),
flushes, lets the reader in and waits until the reader has read, then writes
the rest.
"""

from __future__ import annotations

import os
import pathlib
from types import TracebackType
from typing import Any
from typing import IO
from typing import TYPE_CHECKING

from barriers import CACHE_DIR
from barriers import exists
from barriers import touch
from barriers import wait_until

import pytest


if TYPE_CHECKING:
    from typing import Self  # Python 3.11+: for the type checker only

VALUE_DIR = os.path.realpath(str(CACHE_DIR / "v" / "scenario"))
# Where a write may create the new value before it replaces the old one.
WRITE_DIRS = (VALUE_DIR, os.path.realpath(str(CACHE_DIR)))


class _HalfWriter:
    def __init__(self, f: IO[Any]) -> None:
        self._f = f
        self._held = False

    def write(self, data: Any) -> int:
        if self._held:
            return self._f.write(data)
        self._held = True
        half = len(data) // 2
        written = self._f.write(data[:half])
        self._f.flush()
        touch("half-written")
        wait_until(lambda: exists("reader-done"), "reader-done")
        return written + self._f.write(data[half:])

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._f.__exit__(kind, value, tb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


class _Trap:
    armed = False


@pytest.fixture
def half_write(monkeypatch: pytest.MonkeyPatch) -> type[_Trap]:
    real_open = pathlib.Path.open

    def open_(self: pathlib.Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = real_open(self, mode, *args, **kwargs)
        writing = any(c in mode for c in "wxa+")
        if _Trap.armed and writing and os.path.realpath(str(self.parent)) in WRITE_DIRS:
            _Trap.armed = False
            return _HalfWriter(f)
        return f

    monkeypatch.setattr(pathlib.Path, "open", open_)
    return _Trap
