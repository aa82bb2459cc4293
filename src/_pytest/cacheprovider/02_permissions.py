"""Permissions: the cache dir comes out ``rwx------``, or the umask is flipped to avoid it.

Fix: permissions
Bug: #12308 (closed; fixed upstream in 8.2.1 by flipping the process umask)
Affects: 8.2.0 (mode 0700); 8.2.1 and later (the umask is set twice, process-wide)
Needs: publish-race
Replaces: Cache._ensure_cache_dir_and_supporting_files

8.2.0 fills the cache dir in a ``tempfile`` directory, which is created with
mode 0700, so the published ``.pytest_cache`` is private to its creator.
Upstream's fix reads the umask by setting it and setting it back: the umask is
process-wide, so a thread creating files meanwhile gets the wrong modes.  Here
the private directory is made with a plain ``mkdir`` and the files with a
plain ``open``: they get what the umask gives any directory or file, and the
umask is never touched.  The private name carries the creating pid, which the
orphan sweep (a later layer) relies on.
"""

from __future__ import annotations

import random
import shutil


# Every private entry the cache creates starts with this, followed by
# "<pid>-<token>": directories beside the cache dir while it is being
# published, files beside a value while it is being written.
_PRIVATE_PREFIX = "pytest-cache-files-"
_UNIQUE_NAME_ATTEMPTS = 10

CACHEDIR_FILES: dict[str, bytes] = {
    "README.md": README_CONTENT.encode("utf-8"),
    ".gitignore": b"# Created by pytest automatically.\n*\n",
    "CACHEDIR.TAG": CACHEDIR_TAG_CONTENT,
}


def _private_leaf() -> str:
    """A fresh private file name, carrying our pid for the sweep."""
    # random, not secrets or os.urandom: pytest has imported it already, and
    # the name needs to be unlikely, not unguessable (creation is O_EXCL).
    return f"{_PRIVATE_PREFIX}{os.getpid()}-{random.getrandbits(32):08x}"


def _private_name(directory: Path) -> Path:
    """A fresh private name in ``directory`` (see :func:`_private_leaf`)."""
    return directory / _private_leaf()


def _make_private_dir(parent: Path) -> Path:
    """Create an empty private directory in ``parent``.

    It is created with a plain ``mkdir`` (mode 0o777 filtered by the umask),
    unlike ``tempfile.mkdtemp``'s 0o700, so that once published it has the
    permissions any directory made by the user would have (#12308).
    """
    for _ in range(_UNIQUE_NAME_ATTEMPTS):
        path = _private_name(parent)
        try:
            path.mkdir()
        except FileExistsError:  # EEXIST: token collision, draw another one.
            continue
        return path
    raise FileExistsError(
        errno.EEXIST,
        f"no unused private name after {_UNIQUE_NAME_ATTEMPTS} attempts",
        str(parent),
    )


def _write_new_file(path: Path, content: bytes) -> None:
    """Write a file that must not exist yet, with plain ``open`` permissions."""
    with path.open("xb") as f:
        f.write(content)


def _make_cachedir(target: Path) -> None:
    """Create the cache directory ``target`` with its supporting files, atomically.

    Concurrency invariant: ``target`` only ever appears complete.  Every
    process fills a private sibling directory and publishes it with a single
    rename, and the first rename wins.  A process that loses the race discards
    its own directory and goes on with the winner's (#12381).  However this
    function ends, an exception or ``KeyboardInterrupt`` included, the private
    directory is gone when it returns; only a killed process leaves one
    behind.

    The process umask is never changed (it is process-wide and not
    thread-safe): the directory and files simply get the permissions a plain
    ``mkdir`` and ``open`` would get.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _make_private_dir(target.parent)
    published = False
    try:
        for name, content in CACHEDIR_FILES.items():
            _write_new_file(staging / name, content)
        try:
            staging.rename(target)
            published = True
        except OSError as e:
            if not _lost_publish_race(e, target):
                raise
    finally:
        if not published:
            shutil.rmtree(staging, ignore_errors=True)


class Cache:
    def _ensure_cache_dir_and_supporting_files(self) -> None:
        """Publish the cache dir, unless it exists (it never gets boilerplate added)."""
        if not self._cachedir.is_dir():
            _make_cachedir(self._cachedir)
