"""Atomic ``Cache.set``: a concurrent ``get`` sees a torn value and returns the default.

Fix: atomic-set
Bug: -  (proposed upstream as #12410, closed unmerged: "still a good idea for multi pytest invocations")
Affects: every release
Needs: permissions
Replaces: Cache.set

Upstream truncates the value file and writes it in place, so a reader in
another process (an xdist worker, a second session) can read an empty or
half-written file and silently get the default.  Here the value is written
to a private sibling and renamed over the file: readers see the old value or
the new one, whole.
"""

from __future__ import annotations

import contextlib
import time


_WINDOWS_REPLACE_ATTEMPTS = 20
_RETRY_DELAY = 0.05


def _replace_file(source: Path, target: Path) -> None:
    """``os.replace``, retried while a Windows reader holds ``target`` open.

    Windows refuses to replace a file another process has open (EACCES); the
    reader closes it within moments, so a bounded number of retries suffices.
    Everywhere else ``os.replace`` is atomic and never needs a retry.
    """
    if sys.platform == "win32":
        for _ in range(_WINDOWS_REPLACE_ATTEMPTS - 1):
            try:
                os.replace(source, target)
            except PermissionError:
                time.sleep(_RETRY_DELAY)
            else:
                return
    os.replace(source, target)  # Last attempt (or only one): errors propagate.


def _write_atomic(path: Path, data: str) -> None:
    """Replace the content of ``path`` with ``data`` in one step.

    Concurrency invariant: a reader in any process sees the previous complete
    content or the new complete content, never a part.  The data goes to a
    private sibling (same directory, hence same filesystem), which then
    replaces ``path``; of concurrent writers the last one wins, whole.  The
    sibling never survives a failure; a killed process leaves it for the
    orphan sweep.  The file gets plain ``open`` permissions.

    Not a durability guarantee: nothing is fsync'ed, as upstream never did.
    """
    private = _private_name(path.parent)
    done = False
    try:
        # Path.open, so that failures can be simulated as upstream's tests do.
        with private.open("xb") as f:  # Binary: no newline or codec layer.
            f.write(data.encode("UTF-8"))
        _replace_file(private, path)
        done = True
    finally:
        if not done:
            with contextlib.suppress(FileNotFoundError):
                private.unlink()


class Cache:
    def set(self, key: str, value: object) -> None:
        """Save ``value`` under ``key``, replacing the file in one step.

        A reader in another process, such as an xdist worker or a concurrent
        session, gets the old value or the new one, never a partial file.
        Failing to write is reported as a ``PytestCacheWarning``.

        :param key:
            A ``/`` separated name that stays inside the cache directory;
            start it with your plugin's or application's name.
        :param value:
            Anything the :mod:`json` module can encode: basic types and
            nested lists and dicts of them.
        """
        path = self._getvaluepath(key)
        try:
            self._mkdir(path.parent)
        except OSError as exc:
            self.warn(f"could not create cache path {path}: {exc}", _ispytest=True)
            return
        try:
            self._store(key, path, value)
        except OSError as exc:
            self.warn(f"cache could not write path {path}: {exc}", _ispytest=True)

    def _store(self, key: str, path: Path, value: object) -> None:
        """Write ``value`` as the content of ``path``, atomically."""
        _write_atomic(path, json.dumps(value, ensure_ascii=False, indent=2))
