"""Cache keys escape the cache directory (``../x``, absolute keys).

Fix: keys-confined
Bug: -  (fixed upstream in 9.2.0 by #14884, ``Cache._join_within``)
Affects: 8.2.0 to 9.1.1
Needs: -
Replaces: Cache.mkdir, Cache._getvaluepath

``Path.joinpath`` drops the cache dir for an absolute key and keeps ``..``
parts, so ``cache.set("../../x", ...)`` writes anywhere.  Keys are normalized
and must stay inside their folder.  The base itself is normalized too, so a
``cache_dir`` that contains ``..`` keeps working.
"""

from __future__ import annotations

import re


# Resolved paths of (base, name), and normalized bases: every set and get of
# a key resolves it again.
_CONFINED: dict[tuple[str, str], Path] = {}
_ROOTS: dict[str, str] = {}
_CONFINED_MAX = 4096
# Characters after which a name needs the full check: a leading separator
# (absolute), a drive (``C:``), a ``.`` part (``..`` climbing out).
_PLAIN_NAME = re.compile(r"[^/\\:.][^:]*")


def _confined_name(base: str, name: str) -> str:
    """Join ``name`` onto ``base``, refusing a result outside ``base``.

    ``base / name`` discards ``base`` for an absolute (or drive-qualified)
    ``name`` and keeps ``..`` parts as they are; normalizing first catches
    both, while a ``..`` that stays inside ``base`` remains allowed.
    """
    root = _ROOTS.get(base)
    if root is None:
        root = _ROOTS[base] = os.path.normpath(base)
    if _PLAIN_NAME.fullmatch(name) and "/." not in name and "\\." not in name:
        # Relative, no drive, no part starting with a dot: it cannot climb out.
        return os.path.join(root, name)
    path = os.path.normpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(
            f"{name!r} is not allowed to escape the cache directory ({root})"
        )
    return path


def _confined_path(base: Path, name: str) -> Path:
    """:func:`_confined_name` as a path.

    The answer depends on the two strings alone (no filesystem access), so it
    is remembered; a refused name is checked again every time.
    """
    memo = (os.fspath(base), name)
    try:
        return _CONFINED[memo]
    except KeyError:
        pass
    path = Path(_confined_name(memo[0], name))
    if len(_CONFINED) >= _CONFINED_MAX:
        _CONFINED.clear()
        _ROOTS.clear()
    _CONFINED[memo] = path
    return path


class Cache:
    def mkdir(self, name: str) -> Path:
        """Return the cache's directory called ``name``, creating it if needed.

        Plugins keep data there that outlives a test session, database dumps
        for instance.  Put your plugin's or application's name into ``name``,
        so that it does not clash with other users of the cache.

        .. versionadded:: 7.0

        :param name:
            One path component: a name with a ``/`` separator, or one that
            would resolve outside the cache directory, raises ``ValueError``.
        """
        if len(Path(name).parts) > 1:
            raise ValueError("name is not allowed to contain path separators")
        path = _confined_path(self._cachedir / self._CACHE_PREFIX_DIRS, name)
        self._mkdir(path)
        return path

    def _getvaluepath(self, key: str) -> Path:
        return _confined_path(self._cachedir / self._CACHE_PREFIX_VALUES, key)
