"""The sweep removes live private entries of processes in another PID namespace or host.

Fix: namespace-ownership
Bug: -
Affects: the fork's orphan sweep (layer orphan-sweep); no upstream release sweeps
Needs: permissions, orphan-sweep
Replaces: _private_leaf, _is_orphan

A checkout shared by a devcontainer and its host, by two containers, or by
two machines over NFS is seen by processes whose pids mean nothing to each
other.  The orphan sweep took a private entry whose pid "does not run here"
for an orphan at once, so it removed the value file or cache dir that a
session in another PID namespace was writing, and that session's write was
lost.  A pid only proves death within the PID namespace of the same running
kernel, so the private name now says which one it comes from.
"""

from __future__ import annotations

import hashlib


# Stands for "owner unknown" in a private name: where no id can be computed,
# entries are only ever swept by age.  A real id is longer, so never equal.
_NO_OWNER_ID = "x"
# The start of this process's private names, "<prefix><owner id>-<pid>-": made on
# first use and forgotten in a forked child (see _forget_own_name_start).
_own_name_start: str | None = None


# Hex digits written as the letters a-p (see _owner_id).
_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def _read_small(path: str) -> bytes:
    """The first bytes of a small file, without the layers of a file object."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 256)
    finally:
        os.close(fd)


def _owner_id() -> str:
    """A short id of the PID namespace this process lives in, on this boot of this host.

    It hashes the kernel's boot id (random per boot, so per machine), the
    PID namespace's identity (``/proc/self/ns/pid``) and the host name (two
    VMs cloned from one snapshot).  Two processes with the same id compare
    pids meaningfully; any other pair cannot.  It is :data:`_NO_OWNER_ID`
    where that cannot be established: no ``/proc`` (macOS, Windows, BSDs),
    or a ``/proc`` of another PID namespace than ours (its ``self`` is not
    our pid, as in a container that shares the host's ``/proc``).  The id
    is written in the letters a-p only, so nothing takes it for a pid.
    """
    try:
        boot_id = _read_small("/proc/sys/kernel/random/boot_id").strip()
        if os.readlink("/proc/self") != str(os.getpid()):
            return _NO_OWNER_ID
        pid_namespace = os.readlink("/proc/self/ns/pid").encode()
        host = os.uname().nodename.encode("utf-8", "surrogateescape")
    except (OSError, AttributeError):
        # ENOENT/EACCES/ENOTDIR: no usable /proc; AttributeError: no os.uname (Windows).
        return _NO_OWNER_ID
    if not boot_id:
        return _NO_OWNER_ID
    # blake2b: hashlib's own, where sha256's first use initializes OpenSSL (~50 us).
    digest = hashlib.blake2b(b"\0".join((boot_id, pid_namespace, host)), digest_size=5)
    return digest.hexdigest().translate(_HEX_TO_LETTERS)


def _forget_own_name_start() -> None:
    """After ``fork()``: the child has another pid (and maybe another namespace)."""
    global _own_name_start
    _own_name_start = None


def _new_own_name_start() -> str:
    global _own_name_start
    _own_name_start = f"{_PRIVATE_PREFIX}{_owner_id()}-{os.getpid()}-"
    return _own_name_start


def _register_fork_handler() -> bool:
    """Forget the cached name start in forked children; False where there is no fork."""
    register = getattr(os, "register_at_fork", None)  # Not on Windows.
    if register is None:
        return False
    register(after_in_child=_forget_own_name_start)
    return True


# Assigned: the merge carries statements as definitions; True where fork() exists.
_FORGETS_AFTER_FORK = _register_fork_handler()


def _private_leaf() -> str:
    """A fresh private file name: ``<prefix><owner id>-<pid>-<token>``.

    The owner id (see :func:`_owner_id`) and the pid tell the sweep whether
    the entry's creator can be proven dead (see :func:`_is_orphan`).  The
    start of the name is computed once per process.
    """
    start = _own_name_start or _new_own_name_start()
    return f"{start}{random.getrandbits(32):08x}"


# Longer than any pid a kernel hands out (Linux: at most 2**22): not a pid of ours.
_MAX_PID_DIGITS = 10


def _is_orphan(
    entry: os.DirEntry[str], *, consider_orphaned_if_older_than: float
) -> bool:
    """Whether the private entry ``entry`` was abandoned by its creator.

    The rule: an entry is an orphan at once only when its name carries our
    own owner id (same kernel boot, same PID namespace, same host name) and
    a pid that does not run: then its creator is provably dead, and the
    entry can never be completed or published.  Every other private entry
    (a live or reused pid, another PID namespace or host, an unknown owner,
    a name from upstream pytest or an earlier fork, any name we cannot
    parse) is an orphan only when its mtime is older than
    ``consider_orphaned_if_older_than`` (a timestamp), as upstream's own
    ``tmp_path`` cleanup decides by age.  Symlinks are never ours: they are
    never orphans, never followed.

    Limits: age is all there is for a cache shared across hosts (NFS) or
    containers, and on systems without ``/proc`` (macOS, Windows), so there
    a killed process's leftovers wait for the timeout; an entry kept alive
    longer than the timeout by its owner (a stopped process) can be taken,
    and a clock that is off by more than the timeout misjudges age.
    """
    if not entry.name.startswith(_PRIVATE_PREFIX) or entry.is_symlink():
        return False
    owner, _, rest = entry.name[len(_PRIVATE_PREFIX) :].partition("-")
    pid, sep, _ = rest.partition("-")
    start = _own_name_start or _new_own_name_start()
    if (
        sep
        and owner != _NO_OWNER_ID
        and start.startswith(f"{_PRIVATE_PREFIX}{owner}-")
        and pid.isascii()
        and pid.isdigit()
        and len(pid) <= _MAX_PID_DIGITS
        and not _pid_is_running(int(pid))
    ):
        return True
    return entry.stat(follow_symlinks=False).st_mtime < consider_orphaned_if_older_than
