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
the new one, whole.  The write goes straight to ``os.open``/``os.write`` and
the value's directory is created once per process, so that an atomic set
costs less than upstream's in-place one.
"""

from __future__ import annotations

import contextlib
import errno
import time


_WINDOWS_REPLACE_ATTEMPTS = 20
_RETRY_DELAY = 0.05
# Flags of a private file: it must not exist yet; binary on Windows.  (os.open
# makes descriptors non-inheritable by itself.)
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
# pathlib's own Path.open, as imported: anything else there simulates I/O.
_PATHLIB_OPEN = Path.open
# Directories of values that this process created or found (see Cache.set).
_MADE_DIRS: set[str] = set()
_MADE_DIRS_MAX = 1024
# Times set() makes a folder it made in this very call again when it vanished
# before the write; the vanishing-parent layer raises it.
_VANISHED_FOLDER_RETRIES = 0


def _open_is_simulated() -> bool:
    """Whether ``Path.open`` has been replaced, by a test simulating I/O failures.

    Upstream's own tests (``test_cache_writefail_warns``) and ours make a
    write fail or stall by patching ``Path.open``; while it is patched, the
    cache's file I/O goes through it, as upstream's does.  Otherwise the
    cache uses ``os.open``, which skips the layers of a file object.
    """
    return Path.open is not _PATHLIB_OPEN


def _replace_file(source: str, target: str) -> None:
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


def _write_new_bytes(path: str, raw: bytes) -> None:
    """Create the file ``path``, which must not exist, holding ``raw``.

    Plain ``open`` permissions (0o666 filtered by the umask).  Write and
    close errors propagate (ENOSPC, EDQUOT, EIO on a network filesystem).
    """
    if _open_is_simulated():
        with Path(path).open("xb") as f:
            f.write(raw)
        return
    _write_all(os.open(path, _NEW_FILE_FLAGS, 0o666), raw, path)


def _write_all(fd: int, raw: bytes, path: str) -> None:
    """Write ``raw`` to the open file ``fd``, then close it (errors propagate)."""
    try:
        written = os.write(fd, raw)
        while written < len(raw):  # A short write: go on until an error says why.
            more = os.write(fd, memoryview(raw)[written:])
            if not more:
                raise OSError(errno.EIO, "the file takes no more bytes", path)
            written += more
    finally:
        os.close(fd)


def _rewrite_in_place(path: str, raw: bytes) -> bool:
    """Upstream's write: truncate the existing file ``path`` and write ``raw``.

    False when the file cannot be opened for it (missing, not writable).
    """
    if _open_is_simulated():
        with Path(path).open("r+b") as f:
            f.truncate()
            f.write(raw)
        return True
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_BINARY", 0))
    except OSError:
        return False
    _write_all(fd, raw, path)
    return True


def _discard_private_file(private: str) -> None:
    """Remove a private file of ours that will not be published."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(private)


def _write_private_sibling(target: str, raw: bytes) -> str:
    """Write ``raw`` to a new private file beside ``target``; return its name.

    On failure nothing of it is left behind.
    """
    directory = os.path.dirname(target)
    for _ in range(_UNIQUE_NAME_ATTEMPTS):
        private = os.path.join(directory, _private_leaf())
        try:
            _write_new_bytes(private, raw)
        except FileExistsError:  # EEXIST (from the O_EXCL open): not ours, draw again.
            continue
        except BaseException:
            _discard_private_file(private)
            raise
        return private
    raise FileExistsError(
        errno.EEXIST,
        f"no unused private name after {_UNIQUE_NAME_ATTEMPTS} attempts",
        directory,
    )


def _publish_bytes(path: Path | str, raw: bytes) -> None:
    """Replace the content of ``path`` with ``raw`` in one step (see :func:`_write_atomic`)."""
    target = os.fspath(path)
    try:
        private = _write_private_sibling(target, raw)
    except PermissionError:
        # EACCES/EPERM: the folder takes no new file.  If the value file itself
        # may be written, do as upstream does, which never warns there: rewrite
        # it in place (no more atomic than upstream's write ever was).
        if not _rewrite_in_place(target, raw):
            raise
        return
    try:
        _replace_file(private, target)
    except BaseException:
        _discard_private_file(private)
        raise


def _dumps(value: object) -> str:
    """The text of a value file: indented JSON that keeps non-ASCII characters."""
    return json.dumps(value, ensure_ascii=False, indent=2)


def _write_atomic(path: Path | str, data: str) -> None:
    """Replace the content of ``path`` with ``data`` in one step.

    Concurrency invariant: a reader in any process sees the previous complete
    content or the new complete content, never a part.  The data goes to a
    private sibling (same directory, hence same filesystem), which then
    replaces ``path``; of concurrent writers the last one wins, whole.  The
    sibling never survives a failure; a killed process leaves it for the
    orphan sweep.  The file gets plain ``open`` permissions.  Where the
    folder takes no new file but the value file is writable, the value is
    rewritten in place, as upstream always does: not atomic, but no warning
    where upstream has none.

    Not a durability guarantee: nothing is fsync'ed, as upstream never did.
    """
    _publish_bytes(path, data.encode("UTF-8"))


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
        path = self._value_file(key)
        directory = os.path.dirname(path)
        # A folder only remembered as made may have gone since (--cache-clear
        # elsewhere, rm -rf): then it is made again, once.
        retries = _VANISHED_FOLDER_RETRIES + (directory in _MADE_DIRS)
        while True:
            if directory not in _MADE_DIRS:
                try:
                    self._mkdir(Path(directory))
                except OSError as exc:
                    self.warn(
                        f"could not create cache path {path}: {exc}", _ispytest=True
                    )
                    return
                if len(_MADE_DIRS) >= _MADE_DIRS_MAX:
                    _MADE_DIRS.clear()
                _MADE_DIRS.add(directory)
            try:
                self._store(key, path, value)
            except FileNotFoundError as exc:  # ENOENT: the folder went meanwhile.
                _MADE_DIRS.discard(directory)
                if retries > 0:
                    retries -= 1
                    continue
                self.warn(f"cache could not write path {path}: {exc}", _ispytest=True)
            except OSError as exc:
                self.warn(f"cache could not write path {path}: {exc}", _ispytest=True)
            return

    def _value_file(self, key: str) -> str:
        """The name of the file holding ``key``'s value: what ``set`` writes to."""
        return os.fspath(self._getvaluepath(key))

    def _store(self, key: str, path: str, value: object) -> None:
        """Write ``value`` as the content of ``path``, atomically."""
        _write_atomic(path, _dumps(value))
