"""Creating ``.pytest_cache``: concurrent creators crash, and its permissions are wrong.

Fix: publish-race
Bug: #12381, #12308 (both closed: fixed in 8.2.2 without a test, and in 8.2.1 by flipping the process umask)
Affects: 8.2.0, 8.2.1 (Directory not empty); 8.2.0 (mode 0700); 8.2.1 and later (the umask is set twice, process-wide)
Needs: -
Replaces: _make_cachedir, Cache._ensure_cache_dir_and_supporting_files

pytest 8.2.0 builds the cache dir in a private ``pytest-cache-files-*`` sibling
and renames it into place.  When several processes (xdist workers) create it at
once, every rename after the first fails with ENOTEMPTY (EEXIST elsewhere) and
the session fixture that called ``config.cache.mkdir()`` errors (#12381).  The
sibling comes from ``tempfile``, mode 0700, so the published directory is
private to its creator (#12308); 8.2.1 repaired the mode by reading the umask
the only way there is, setting it and setting it back, which changes it for
every thread of the process meanwhile.

Here the loser of the race goes on with the winner's directory, and the
sibling is made with a plain ``mkdir`` and plain ``open``: it gets what the
umask gives any directory or file, and the umask is never touched.  A path
that exists and is no directory is named in the error instead of a bare errno.

The private name says who made it (``<prefix><owner>-<pid>-<token>``): every
private entry the cache makes carries it, so that the leftovers of a killed
process can be told from the work of a live one (see the orphan sweep).
"""

from __future__ import annotations

from collections.abc import Callable
import errno
import functools
import hashlib
import random
import shutil
import sys
from typing import TypeVar


# Every private entry of the cache starts with this: directories beside the
# cache dir while it is being published, files in it while a value is written.
_PRIVATE_PREFIX = "pytest-cache-files-"
_UNIQUE_NAME_ATTEMPTS = 10
# Stands for "owner unknown" in a private name (no /proc): such entries are
# judged by age only.  A real owner id is longer, so never equal.
_NO_OWNER_ID = "x"
# Hex digits written as the letters a-p, so that nothing takes an owner id for a pid.
_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")
_T = TypeVar("_T")

CACHEDIR_FILES: dict[str, bytes] = {
    "README.md": README_CONTENT.encode("utf-8"),
    ".gitignore": b"# Created by pytest automatically.\n*\n",
    "CACHEDIR.TAG": CACHEDIR_TAG_CONTENT,
}


def _owner_id() -> str:
    """A short id of this process's PID namespace on this boot of this machine.

    Two processes with the same id compare pids meaningfully; any other pair
    cannot (a dev container beside its host, two machines over NFS: the boot id
    is random per boot).  It is :data:`_NO_OWNER_ID` where it cannot be
    established: no ``/proc`` (macOS, Windows), or a ``/proc`` of another PID
    namespace (its ``self`` is not us).
    """
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb", buffering=0) as f:
            boot_id = f.read().strip()
        if not boot_id or os.readlink("/proc/self") != str(os.getpid()):
            return _NO_OWNER_ID
        namespace = os.readlink("/proc/self/ns/pid").encode()
    except OSError:  # No usable /proc.
        return _NO_OWNER_ID
    # blake2b: sha256's first use initializes OpenSSL, which costs more than this.
    digest = hashlib.blake2b(boot_id + b"\0" + namespace, digest_size=5)
    return digest.hexdigest().translate(_HEX_TO_LETTERS)


@functools.lru_cache(maxsize=1)
def _name_start(pid: int) -> str:
    """``<prefix><owner id>-<pid>-``; keyed by pid, so a forked child gets its own."""
    return f"{_PRIVATE_PREFIX}{_owner_id()}-{pid}-"


def _private_leaf() -> str:
    """A fresh private name, ``<prefix><owner id>-<pid>-<token>``."""
    # random, not secrets: the name must be unlikely, not unguessable (creation is
    # exclusive), and pytest has imported random already.
    return f"{_name_start(os.getpid())}{random.getrandbits(32):08x}"


def _create_private(folder: Path, create: Callable[[Path], _T]) -> tuple[Path, _T]:
    """``create(name)`` for a fresh private name in ``folder``; the name and what it returned.

    ``create`` must fail with EEXIST for a name that exists (``mkdir``, an
    exclusive open): a collision of tokens, then another one is drawn.
    """
    for _ in range(_UNIQUE_NAME_ATTEMPTS):
        name = folder / _private_leaf()  # Parses the leaf only: cheaper than Path(str).
        try:
            return name, create(name)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused private name", folder)


def _make_private_dir(parent: Path) -> Path:
    """Create an empty private directory in ``parent`` with plain ``mkdir`` permissions."""
    return _create_private(parent, os.mkdir)[0]


def _lost_publish_race(error: OSError, target: Path) -> bool:
    """Whether renaming a directory onto ``target`` failed because another process won.

    POSIX ``rename(2)`` refuses to replace a non-empty directory with ENOTEMPTY
    (Linux, macOS) or EEXIST (other systems POSIX allows); Windows refuses any
    existing target with EEXIST, or with access denied while the winner's
    directory is in use.  It only means a lost race when ``target`` now is a
    directory: the winner's, complete.
    """
    windows = {errno.EACCES} if sys.platform == "win32" else set()
    return error.errno in {errno.ENOTEMPTY, errno.EEXIST, *windows} and target.is_dir()


def _make_cachedir(target: Path) -> None:
    """Create the cache directory ``target`` with its supporting files, atomically.

    Concurrency invariant: ``target`` only ever appears complete.  Every process
    fills a private sibling and publishes it with one rename; the first rename
    wins, and a loser discards its sibling and goes on with the winner's
    directory (#12381).  However this ends, the sibling is gone when it returns;
    only a killed process leaves one behind.  Modes are what a plain ``mkdir``
    and ``open`` give (#12308); the process umask is never changed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _make_private_dir(target.parent)
    try:
        for name, content in CACHEDIR_FILES.items():
            with (staging / name).open("xb") as f:
                f.write(content)
        staging.rename(target)
    except OSError as e:
        if _lost_publish_race(e, target):
            return
        if os.path.lexists(target) and not target.is_dir():
            msg = "the cache directory path exists and is not a directory"
            raise NotADirectoryError(errno.ENOTDIR, msg, str(target)) from e
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class Cache:
    def _ensure_cache_dir_and_supporting_files(self) -> None:
        """Publish the cache dir unless it exists (see :func:`_make_cachedir`)."""
        if not self._cachedir.is_dir():
            _make_cachedir(self._cachedir)
