"""A corrupt ``lastfailed`` stays on disk for ever once every test passes.

Fix: corrupt-lastfailed-repaired
Bug: -  (not reported upstream as far as we know)
Affects: every release
Needs: lastfailed-merge
Replaces: LFPlugin.pytest_sessionfinish

A torn or otherwise invalid ``cache/lastfailed`` reads as ``{}``.  The
session writes lastfailed back only when its view differs from what it
reads at the end, so once every test passes ``{} == {}`` and the corrupt
bytes are never replaced.  A value that exists but is no JSON now counts as
different, and the write-back repairs it.  Stock reads such a file silently,
so the repair is silent too: if it cannot be written, nothing is reported.
"""

from __future__ import annotations

import warnings

from _pytest.warning_types import PytestCacheWarning


# Returned by Cache.get for a value that is missing or cannot be read.
_NO_VALUE = object()


def _holds_invalid_json(path: Path) -> bool:
    """Whether ``path`` can be read but holds no JSON (torn, truncated, garbage).

    A missing or unreadable file (ENOENT, EACCES, ...) is not invalid: there
    is nothing to repair, or no way to.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return False
    try:
        json.loads(data)
    except ValueError:  # UnicodeDecodeError included.
        return True
    return False


class LFPlugin:
    def pytest_sessionfinish(self, session: Session) -> None:
        """Write this session's lastfailed back if it differs from the disk's, or that is corrupt."""
        config = self.config
        if config.getoption("cacheshow") or hasattr(config, "workerinput"):
            return
        cache = config.cache
        assert cache is not None
        current = self.lastfailed
        if current and type(next(iter(current))) is not str:
            # pytest 9.2 keys lastfailed by NodeId; earlier releases by str already.
            current = {str(nodeid): failed for nodeid, failed in current.items()}
        path = cache._getvaluepath("cache/lastfailed")
        at_start = getattr(self, "_lastfailed_at_start", None)
        if at_start and _signature(path) == cache._first_seen.get("cache/lastfailed"):
            # Nobody rewrote it since this session read it: no need to parse it
            # again (a corrupt one read as empty, so it is never taken from here).
            plain = type(next(iter(at_start))) is str
            saved = at_start if plain else {str(k): v for k, v in at_start.items()}
        else:
            saved = cache.get("cache/lastfailed", _NO_VALUE)
        corrupt = saved is _NO_VALUE and _holds_invalid_json(path)
        if saved is _NO_VALUE:
            saved = {}  # As upstream reads a missing or invalid value.
        if saved != current:
            cache.set("cache/lastfailed", current)
        elif corrupt:
            # Only a repair, which stock never attempts: no warning if it fails.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PytestCacheWarning)
                cache.set("cache/lastfailed", current)
