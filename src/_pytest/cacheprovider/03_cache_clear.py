"""``--cache-clear`` under xdist: every worker clears again, racing with the others.

Fix: cache-clear
Bug: #6670 (open: rm_rf warnings with xdist and --cache-clear)
Affects: every release
Needs: publish-race, orphan-sweep
Replaces: Cache.for_config, Cache.clear_cache, Cache._mkdir

xdist passes the controller's arguments to every worker, so each worker's
``Cache.for_config`` clears the shared cache again: workers delete the same
trees at once (``rm_rf`` warnings, #6670), and a worker started late (one
replacing a crashed worker) wipes the values the others already wrote.  A
concurrent session's ``cache.mkdir()`` fails when the clear takes ``d/``
between its two ``mkdir`` steps.

The clear belongs to the process that owns the run, and to a worker with a
cache of its own (``--tx ssh=...``, ``popen//chdir=...``) that starts with the
run, never to a late one.  A tree is claimed by a rename before it is deleted,
so nobody walks it half-deleted under its live name, and what a clear left
behind when interrupted is finished by the next one.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from _pytest.config.exceptions import UsageError
from _pytest.stash import StashKey


# Times a cache folder is made again when a concurrent clear took it meanwhile.
_VANISHED_FOLDER_ATTEMPTS = 5
# In workerinput: the controller's cache, when that worker must clear its own.
_CLEAR_UNLESS_CACHE = "pytest_cache_clear_unless"
# In the controller's stash: the run has started, so a new worker is a late one.
_RUN_STARTED = StashKey[bool]()


def _cache_identity(cachedir: Path) -> str:
    """Names one cache dir across processes and machines (the host and the real path)."""
    return f"{socket.gethostname()}:{os.path.realpath(cachedir)}"


def _clears_here(config: Config, cachedir: Path) -> bool:
    """Whether this process clears ``cachedir`` for ``--cache-clear``.

    The controller (or a plain session) always does.  An xdist worker does
    only when the controller asked it to, which it does for the workers it
    starts with the run, and only when the worker's cache is not the
    controller's (which the controller cleared already).
    """
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return True
    asked = isinstance(workerinput, dict) and _CLEAR_UNLESS_CACHE in workerinput
    return asked and workerinput[_CLEAR_UNLESS_CACHE] != _cache_identity(cachedir)


def _discard(path: Path) -> None:
    """Remove the tree at ``path`` without leaving it half-deleted under its name.

    The claim: a new private directory is made beside ``path`` (fresh mtime,
    our owner id and pid in its name) and ``path`` is moved into it by one
    rename.  Of processes discarding the same path one rename succeeds and the
    others see ENOENT and leave it alone.  Where no claim can be made (a
    read-only cache, EXDEV from an overlayfs lower layer, a folder that takes
    no new entry) the tree is deleted in place, as every release does.
    """
    claim: Path | None = None
    try:
        claim = _make_private_dir(path.parent)
        path.rename(claim / path.name)
    except OSError as e:
        if claim is not None:
            claim.rmdir()
        if isinstance(e, FileNotFoundError):  # ENOENT: gone, or claimed meanwhile.
            return
        claim = None
    if claim is not None or path.is_dir():
        rm_rf(claim or path)


class Cache:
    @classmethod
    def for_config(cls, config: Config, *, _ispytest: bool = False) -> Cache:
        """Create the Cache instance for a Config, clearing it for ``--cache-clear``.

        See :func:`_clears_here` for which process clears.  A cache that cannot
        be cleared (EACCES, EROFS) stops the run with a usage error, not an
        internal error, whatever ``-W`` says.

        :meta private:
        """
        check_ispytest(_ispytest)
        cachedir = cls.cache_dir_from_config(config, _ispytest=True)
        clears = config.getoption("cacheclear") and _clears_here(config, cachedir)
        if clears and cachedir.is_dir():
            try:
                cls.clear_cache(cachedir, _ispytest=True)
            except OSError as e:
                raise UsageError(
                    f"--cache-clear could not clear {cachedir}: {e}"
                ) from e
        return cls(cachedir, config, _ispytest=True)

    @classmethod
    def clear_cache(cls, cachedir: Path, _ispytest: bool = False) -> None:
        """Remove the directories holding cached values and directories.

        What an interrupted clear left (a claim whose owner died) goes first.

        :meta private:
        """
        check_ispytest(_ispytest)
        _sweep_orphans(cachedir)
        for prefix in (cls._CACHE_PREFIX_DIRS, cls._CACHE_PREFIX_VALUES):
            _discard(cachedir / prefix)

    def _mkdir(self, path: Path) -> None:
        """Create ``path`` (and the cache dir), again if a concurrent clear took a parent."""
        self._ensure_cache_dir_and_supporting_files()
        for _ in range(_VANISHED_FOLDER_ATTEMPTS - 1):
            with contextlib.suppress(FileNotFoundError):  # d/ or v/ claimed meanwhile.
                path.mkdir(exist_ok=True, parents=True)
                return
        path.mkdir(exist_ok=True, parents=True)


@hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, in the controller: ask a worker that starts with the run to clear its own cache."""
    config = node.config
    if config.getoption("cacheclear") and not config.stash.get(_RUN_STARTED, False):
        assert config.cache is not None
        node.workerinput[_CLEAR_UNLESS_CACHE] = _cache_identity(config.cache._cachedir)


@hookimpl(tryfirst=True)
def pytest_runtestloop(session: Session) -> None:
    # Workers started from now on replace crashed ones: they must not clear.
    session.config.stash[_RUN_STARTED] = True
