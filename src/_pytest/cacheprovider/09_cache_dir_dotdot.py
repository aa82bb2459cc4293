"""A ``cache_dir`` containing ``..`` crashes pytest 9.2.0 at configure.

Fix: cache-dir-dotdot
Bug: -  (a regression of 9.2.0's #14884; not reported upstream as far as we know)
Affects: 9.2.0
Needs: keys-confined
Replaces: Cache._join_within

``cache_dir = ../shared_cache`` in the ini gives a base such as
``/repo/../shared_cache/v``; ``_join_within`` normalizes the joined path but
not the base, so every key "escapes" and pytest stops with INTERNALERROR
("'cache/lastfailed' is not allowed to escape the cache directory").  It now
uses the keys-confined layer's join, which normalizes both sides first.
"""

from __future__ import annotations


class Cache:
    @staticmethod
    def _join_within(base: Path, name: str) -> Path:
        """``base / name``, refused with ``ValueError`` where it would leave ``base``.

        The same rule as for every value's path (see :func:`_confined_name`).
        """
        return Path(_confined_name(os.fspath(base), name))
