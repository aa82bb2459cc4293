"""A ``cache_dir`` containing ``..`` crashes pytest 9.2.0 at configure.

Fix: cache-dir-dotdot
Bug: -  (a regression of 9.2.0's #14884; not reported upstream as far as we know)
Affects: 9.2.0
Needs: -
Replaces: Cache._join_within

``cache_dir = ../shared_cache`` in the ini gives a base such as
``/repo/../shared_cache/v``; ``_join_within`` normalizes the joined path but
not the base, so every key "escapes" and pytest stops with INTERNALERROR
("'cache/lastfailed' is not allowed to escape the cache directory").  Both
sides are normalized before they are compared.
"""

from __future__ import annotations


class Cache:
    @staticmethod
    def _join_within(base: Path, name: str) -> Path:
        """``base / name``, refused with ``ValueError`` where it would leave ``base``.

        Both are normalized lexically first: an absolute or drive-qualified
        ``name`` and ``..`` parts that climb out are refused, a ``..`` that
        stays inside is allowed, and so is a ``base`` that has ``..`` parts.
        """
        root = Path(os.path.normpath(base))
        path = Path(os.path.normpath(root.joinpath(name)))
        if not path.is_relative_to(root):
            raise ValueError(
                f"{name!r} is not allowed to escape the cache directory ({root})"
            )
        return path
