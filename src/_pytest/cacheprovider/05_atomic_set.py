"""``Cache.set`` writes in place: a concurrent ``get`` sees a torn value and returns the default.

Fix: atomic-set
Bug: -  (proposed upstream as #12410, closed unmerged: "still a good idea for multi pytest invocations")
Affects: every release
Needs: publish-race
Replaces: Cache.get, Cache.set

Every release truncates the value file and writes it in place, so a reader in
another process (an xdist worker, a second session) can read an empty or
half-written file and silently get the default.  Here the value is written to
a private file in the cache dir and renamed over the value file: readers see
the old value or the new one, whole.  A new object, array or string, of which
no part parses, is written straight into its new file.  The replaced file
keeps what the in-place write kept (mode, owner, group, a symlink written
through, a folder on another filesystem), a full disk or a folder that takes
no new file falls back to the in-place write, and a value whose bytes are on
disk already is not written again (every session sets ``cache/nodeids`` and
``cache/stepwise``, mostly to what they hold).  Node ids that are not valid
UTF-8 (a test file whose name is not) are written as JSON escapes instead of
failing the write.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import functools
import stat
import time
from typing import Any

from _pytest.warning_types import PytestCacheWarning


# Attempts and pause while Windows denies access for a moment (see _retried).
_WINDOWS_ATTEMPTS = 20
_WINDOWS_DELAY = 0.01
# Attempts to write a value; its folder is made between them (the first value
# in it, or a concurrent clear took it).
_SET_ATTEMPTS = 5
# Errors making the private file or renaming it after which the value is
# rewritten in place, as every release does: a full disk or quota, a folder
# that takes no new file, or an owner or group this process cannot give.
_IN_PLACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM})
# Errors after which the private file is made beside the value instead: the
# cache dir takes no new file, or the value's folder is on another filesystem.
# Not EPERM: an owner this process cannot give is refused beside it too.
_BESIDE_ERRNOS = frozenset({errno.EXDEV, errno.EACCES})
# Made once: json.dumps with options makes an encoder per call (5% of a set).
_ENCODER = json.JSONEncoder(ensure_ascii=False, indent=2)


def _encode(value: object) -> bytes:
    """The bytes of a value file: indented JSON, UTF-8.

    A string that is not valid Unicode (a lone surrogate, from a file name that
    is not UTF-8) cannot be encoded as UTF-8: then the whole value is written
    with JSON escapes, which read back to the same strings.
    """
    try:
        return _ENCODER.encode(value).encode("UTF-8")
    except UnicodeEncodeError:
        return json.dumps(value, indent=2).encode("ascii")


def _write_all(f: Any, data: bytes) -> None:
    """Write all of ``data`` to the unbuffered file ``f`` (a short write goes on)."""
    written = f.write(data)
    while isinstance(written, int) and written < len(data):
        more = f.write(memoryview(data)[written:])
        if not more:  # Not even an error says why: say it.
            raise OSError(errno.EIO, "the file takes no more bytes")
        written += more


def _followed(path: Path, link: os.stat_result) -> tuple[Path, os.stat_result | None]:
    """The file a write to the symlink ``path`` goes to, and its status.

    The link is followed where the kernel's ``protected_symlinks`` rule would
    follow it in a sticky folder: it belongs to us or to the folder's owner.
    Otherwise the link itself is replaced, so that nobody who may write a
    shared cache folder can make pytest write elsewhere.
    """
    if sys.platform == "win32":
        return path, link
    if link.st_uid not in (os.geteuid(), os.stat(os.path.dirname(path)).st_uid):
        return path, link
    target = Path(os.path.realpath(path))
    try:
        return target, os.stat(target)
    except FileNotFoundError:  # A dangling link: the write creates its target.
        return target, None


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """The in-place write of every release, without its torn or truncated file.

    The new bytes overwrite the old ones and the file is then cut to length;
    when that fails (a full disk while the file grows), the old bytes, which fit
    where they were, are put back, and the error propagates.
    """
    with path.open("r+b", buffering=0) as f:
        old = f.read()
        try:
            f.seek(0)
            _write_all(f, data)
            f.truncate()
        except OSError:
            f.seek(0)
            _write_all(f, old)
            f.truncate()
            raise


def _write_private(folder: Path, data: bytes, old: os.stat_result | None) -> Path:
    """Write ``data`` to a new private file in ``folder``, with ``old``'s mode, owner and group.

    A new value (``old`` is None) keeps what ``open`` gave it; otherwise what
    of ``old``'s mode, owner and group the fresh file did not get (mostly
    nothing) is set before any byte is written, so that not even the private
    copy of a secret is readable by more users than the value.  Nothing of the
    private file is left when this fails.
    """
    private, f = _create_private(folder, lambda name: name.open("xb", buffering=0))
    try:
        with f:
            if old is not None and sys.platform != "win32":
                new = os.fstat(f.fileno())
                if stat.S_IMODE(new.st_mode) != stat.S_IMODE(old.st_mode):
                    os.fchmod(f.fileno(), stat.S_IMODE(old.st_mode))
                if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
                    os.fchown(f.fileno(), old.st_uid, old.st_gid)
            _write_all(f, data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(private)
        raise
    return private


def _retried(call: Callable[..., _T], *args: object) -> _T:
    """``call(*args)``, retried while Windows denies access for a moment.

    Windows refuses to open a file another process is replacing, and to
    replace one another process has open (access denied); the other side is
    done within moments.  Elsewhere that error means what it says, at once.
    """
    for _ in range(_WINDOWS_ATTEMPTS - 1 if sys.platform == "win32" else 0):
        try:
            return call(*args)
        except PermissionError:
            time.sleep(_WINDOWS_DELAY)
    return call(*args)


def _content_is(path: Path, data: bytes) -> bool:
    """Whether the file at ``path`` holds exactly ``data`` (False if it cannot be read)."""
    try:
        if os.stat(path).st_size != len(data):  # No read (a big lastfailed: megabytes).
            return False
        with path.open("rb", buffering=0) as f:
            return f.read(len(data) + 1) == data
    except OSError:
        return False


def _write_atomic(
    path: Path, data: bytes, private_folder: Path, written: dict[Path, int]
) -> None:
    """Replace the content of ``path`` with ``data`` in one step, unless it holds it already.

    Concurrency invariant: a reader in any process sees the previous complete
    content or the new one, never a part; of concurrent writers the last one
    wins, whole.  The data goes to a private file in ``private_folder`` (the
    cache dir: same filesystem, and where the orphan sweep looks), which then
    replaces ``path``.  A new value that is a JSON object, array or string is
    written straight into its new file instead: no part of one parses, so a
    reader gets no value until it is whole, as a moment before; a writer that
    finds another's new file meanwhile replaces it.  A skipped write is one
    whose bytes were read on disk just now; ``written`` (hashes of the values
    this process wrote, by path) only tells which files need no reading
    because they differ.

    What the in-place write of every release kept, this keeps: the file's mode,
    group and owner (where the process may give them; otherwise, on a full
    disk, and where the value's folder takes no new file, it rewrites in place
    as those releases do), and a symlink is written through to its target (see
    :func:`_followed`), replaced beside it; a hard link is not written
    through.  Where ``private_folder`` takes no new file (a cache dir of
    another user) or is on another filesystem than the value (a folder linked
    to a RAM disk: no rename crosses), the private file is made beside the
    value.  Not durable: nothing is fsync'ed, as never.
    """
    try:
        old: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        old = None
    if old is not None and stat.S_ISLNK(old.st_mode):
        target, old = _followed(path, old)
        if target != path:  # Written through: the private file goes beside the target.
            path, private_folder = target, target.parent
    if old is not None and old.st_size == len(data):
        known = written.get(path)
        if (known is None or known == hash(data)) and _content_is(path, data):
            return
    if old is None and data[-1:] in (b"}", b"]", b'"'):
        try:  # No private file, no rename: a part of it reads as no value.
            with path.open("xb", buffering=0) as f:
                _write_all(f, data)
        except FileExistsError:  # Another writer made it meanwhile: replace it.
            return _write_atomic(path, data, private_folder, written)
    else:
        try:
            private = _write_private(private_folder, data, old)
            try:
                _retried(os.replace, private, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(private)
                raise
        except OSError as e:
            beside = path.parent
            if e.errno in _BESIDE_ERRNOS and private_folder != beside:
                return _write_atomic(path, data, beside, written)
            if old is None or e.errno not in _IN_PLACE_ERRNOS:
                raise
            _rewrite_in_place(path, data)
    written[path] = hash(data)  # Cheap beside encoding: a known change needs no read.


class Cache:
    @functools.cached_property
    def _written(self) -> dict[Path, int]:
        """Hashes of the small values this session wrote, by path (see :func:`_write_atomic`)."""
        return {}

    def get(self, key: str, default: Any) -> Any:
        """Return the value saved under ``key``, or ``default`` if there is none.

        A value that cannot be read or decoded counts as none.

        :param key:
            A ``/`` separated name that stays inside the cache directory;
            start it with your plugin's or application's name.
        :param default:
            What to return for a missing or unreadable value.
        """
        path = self._value_file(key)  # ValueError for a key that escapes.
        try:
            # Decoded before parsing, as stock's text read does: strict UTF-8, and
            # the bytes are freed first, so the parse faults in fewer new pages.
            return json.loads(_retried(path.read_bytes).decode())
        except (OSError, ValueError):  # ENOENT, EISDIR...; corrupt, or not UTF-8.
            return default

    @functools.cached_property
    def _value_file(self) -> Callable[..., Path]:
        """``_getvaluepath``, remembered: the same few keys come again and again."""
        # One Path per key, its str made once: parsing a str again costs more than
        # the open that uses it.
        remember = functools.lru_cache(maxsize=256)  # A few keys; cheap to miss.
        # Not remember(self._getvaluepath): that counts 99 thousand more instructions
        # at session start (callgrind).
        return remember(lambda key: self._getvaluepath(key))

    @functools.cached_property
    def _write_steps(self) -> dict[str, Callable[..., None]]:
        """Per key, the step every write of it goes through: ``step(write, value)``.

        For keys whose owner must do more than write (the lastfailed merge locks
        and merges); the step calls ``write`` with the bytes to write, or not.
        """
        return {}

    def set(self, key: str, value: object) -> None:
        """Save ``value`` under ``key``, replacing the value file in one step.

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
        path = self._value_file(key)  # ValueError for a key that escapes.
        step = self._write_steps.get(key)
        try:
            if step is None:
                self._write_value(path, _encode(value))
            else:
                step(functools.partial(self._write_value, path), value)
        except PytestCacheWarning as e:  # Warned here: it names the caller of set().
            self.warn(str(e), _ispytest=True)

    def _write_value(self, path: Path, data: bytes) -> None:
        """Write ``data`` as the value file ``path`` (see :func:`_write_atomic`).

        The value's folder is made when a write fails without it: for the
        first value in it (another process may be making it at the same
        moment), or when a concurrent ``--cache-clear`` took it, and then the
        value is written after the clear, as if ``set`` had come a moment
        later.  Raises the ``PytestCacheWarning`` that ``set`` gives when it
        cannot be written.
        """
        for attempt in range(1, _SET_ATTEMPTS + 1):
            try:
                _write_atomic(path, data, self._cachedir, self._written)
                return
            except OSError as exc:
                # Unless its folder was missing (ENOENT: another writer may have
                # made it since) or is (or is out of reach: making it says why).
                if attempt == _SET_ATTEMPTS or (
                    exc.errno != errno.ENOENT and os.path.isdir(os.path.dirname(path))
                ):
                    raise PytestCacheWarning(
                        f"cache could not write path {path}: {exc}"
                    ) from exc
            try:
                self._mkdir(path.parent)
            except OSError as exc:
                raise PytestCacheWarning(
                    f"could not create cache path {path}: {exc}"
                ) from exc
