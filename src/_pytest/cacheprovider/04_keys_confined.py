"""Cache keys escape the cache directory, and 9.2.0 refuses every key of a ``cache_dir`` with ``..``.

Fix: keys-confined
Bug: -  (escaping keys fixed upstream in 9.2.0 by #14884; its ``cache_dir = ../x`` crash not reported as far as we know)
Affects: 8.2.0 to 9.1.1 (keys escape); 9.2.0 (INTERNALERROR for a cache_dir containing ..)
Needs: -
Replaces: Cache._join_within, Cache._getvaluepath, Cache.mkdir

``Path.joinpath`` drops the cache dir for an absolute key and keeps ``..``
parts, so ``cache.set("../../x", ...)`` writes anywhere.  9.2.0 confines keys
with ``_join_within``, which normalizes the joined path but not the base: with
``cache_dir = ../shared_cache`` in the ini every key "escapes" and pytest
stops at configure ("'cache/lastfailed' is not allowed to escape the cache
directory").  Both sides are normalized here.  Keys are what they always
were: ``/``-separated strings or ``os.PathLike`` objects, trailing slashes
allowed.
"""

from __future__ import annotations


class Cache:
    @staticmethod
    def _join_within(base: Path, name: str | os.PathLike[str]) -> Path:
        """Join ``name`` onto ``base``, refused with ``ValueError`` where it would leave ``base``.

        ``os.path.join`` discards ``base`` for an absolute (or drive-qualified)
        ``name`` and keeps ``..`` parts; normalizing both sides catches both, while
        a ``..`` that stays inside ``base`` remains allowed.
        """
        root = os.path.normpath(base)
        path = os.path.normpath(os.path.join(root, name))
        # With the trailing separator: "/cache-old" is not inside "/cache".
        inside = os.path.normcase(os.path.join(root, ""))
        if not os.path.normcase(os.path.join(path, "")).startswith(inside):
            raise ValueError(f"{name!r} is not allowed to escape the cache directory")
        return Path(path)

    def _getvaluepath(self, key: str | os.PathLike[str]) -> Path:
        return self._join_within(self._cachedir / self._CACHE_PREFIX_VALUES, key)

    def mkdir(self, name: str) -> Path:
        """Return the cache's directory called ``name``, creating it if needed.

        Plugins keep data there that outlives a test session, database dumps for
        instance.  Put your plugin's or application's name into ``name``, so that
        it does not clash with other users of the cache.

        .. versionadded:: 7.0

        :param name:
            One path component: a name with a ``/`` separator, or one that would
            resolve outside the cache directory, raises ``ValueError``.
        """
        if len(Path(name).parts) > 1:
            raise ValueError("name is not allowed to contain path separators")
        path = self._join_within(self._cachedir / self._CACHE_PREFIX_DIRS, name)
        self._mkdir(path)
        return path
