"""Orphans: ``pytest-cache-files-*`` left by a killed process stay for ever.

Fix: orphan-sweep
Bug: -  (not reported upstream as far as we know)
Affects: 8.2.0 and later (the private directories of the publish step)
Needs: publish-race
Replaces: -

A process killed between creating its private directory and renaming it
leaves the private entry behind; no release ever removes it.  A session
sweeps such orphans beside and in the cache dir when it ends.  It never
removes a live process's entry, and it is housekeeping that releases do
not do, so nothing it meets may fail or warn.
"""

from __future__ import annotations

import stat


# A private entry whose owner cannot be proven dead (another PID namespace or
# host, no owner id, a name we cannot parse) is only swept at this age, in
# seconds, as tmp_path's cleanup decides by age.
ORPHAN_TIMEOUT = 3600.0
# Longer than any pid a kernel hands out (Linux: at most 2**22): not a pid.
_MAX_PID_DIGITS = 10


def _own_dead_pid(name: str) -> bool | None:
    """For a private name of our own PID namespace, whether its pid is dead; else None.

    Owner ids exist only with Linux's ``/proc``, so signal 0 only probes.  A
    live process of another user (EPERM) raises: the sweep leaves its entry.
    """
    owner, _, rest = name[len(_PRIVATE_PREFIX) :].partition("-")
    pid, sep, _ = rest.partition("-")
    ours = _name_start(os.getpid()).startswith(f"{_PRIVATE_PREFIX}{owner}-")
    valid_pid = pid.isascii() and pid.isdigit() and len(pid) <= _MAX_PID_DIGITS
    if not (sep and ours and owner != _NO_OWNER_ID and valid_pid):
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:  # ESRCH: no such process.
        return True
    return False


def _filesystem_now(directory: Path) -> float:
    """The time now on the clock that stamps entries in ``directory``.

    A fresh entry's mtime: on a network filesystem that is the server's clock,
    which stamped the entries being judged too, so no client's clock matters.
    """
    probe = _make_private_dir(directory)
    try:
        return probe.stat().st_mtime
    finally:
        probe.rmdir()


def _sweep_orphans(cachedir: Path) -> None:
    """Remove private entries abandoned by killed processes, beside and in ``cachedir``.

    The rule: an entry whose name carries our own owner id is an orphan when its
    pid does not run, and never while it runs (whatever its age); any other
    private entry is an orphan once it is :data:`ORPHAN_TIMEOUT` old on the
    filesystem's own clock.  Symlinks are never ours.  An orphan is removed
    where it is, never moved; what cannot be removed stays for a later sweep.
    Every error means "not now": nothing here may fail a run.
    """
    for directory in (cachedir.parent, cachedir):
        try:
            with os.scandir(directory) as it:
                entries = [e for e in it if e.name.startswith(_PRIVATE_PREFIX)]
        except OSError:  # ENOENT, EACCES, EIO...: nothing to sweep there.
            continue
        now: float | None = None
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                dead = _own_dead_pid(entry.name)
                if dead is None:
                    now = now or _filesystem_now(Path(directory))  # Once, if needed.
                    dead = now - st.st_mtime > ORPHAN_TIMEOUT
                if not dead or stat.S_ISLNK(st.st_mode):
                    continue
                if stat.S_ISDIR(st.st_mode):  # All it can: the rest stays for later.
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue


def pytest_unconfigure(config: Config) -> None:
    # The process that owns the run sweeps once; workers and --cache-show do not write.
    cache = getattr(config, "cache", None)  # None if configuring failed early.
    if cache is None or hasattr(config, "workerinput") or config.option.cacheshow:
        return
    _sweep_orphans(cache._cachedir)
