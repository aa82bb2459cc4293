"""``--cache-show`` lists private files of the fork as cache keys.

Fix: cache-show-private
Bug: -
Affects: the fork's private value files (layer atomic-set); upstream has none below ``v/``
Needs: atomic-set
Replaces: cacheshow

A value is written to a private sibling and renamed into place, so while a
session writes, or after one was killed mid-write (until the sweep removes
it), ``v/`` holds ``pytest-cache-files-*`` files.  Upstream's
``cacheshow`` shows every file below ``v/`` as a key, so those appeared as
keys with "unreadable content" or half a value.  They are left out, and, as
9.2.0 does, so is anything a glob with ``..`` finds outside the folder.
"""

from __future__ import annotations


def _shown_files(base: Path, pattern: str) -> list[Path]:
    """Files below ``base`` matching ``pattern``, sorted, for ``--cache-show``.

    Left out: what is not a regular file (following symlinks, as upstream
    does), what a ``..`` in the pattern finds outside ``base``, and private
    entries of the fork (a value being written, or left by a killed writer:
    no key of anyone's).
    """
    root = os.path.normpath(base)
    shown = []
    for path in base.rglob(pattern):
        normal = os.path.normpath(path)
        if os.path.commonpath([root, normal]) != root:
            continue
        inside = os.path.relpath(normal, root).split(os.sep)
        if any(part.startswith(_PRIVATE_PREFIX) for part in inside):
            continue
        if path.is_file():
            shown.append(path)
    return sorted(shown)


def cacheshow(config: Config, session: Session) -> int:
    """Show the cache's values and the files of its directories (``--cache-show [glob]``).

    Output as upstream's: the cache dir, then each value matching the glob
    (default ``*``) pretty-printed, then each file below ``d/``, with its
    size.  Private entries and matches outside the cache are not shown (see
    :func:`_shown_files`).
    """
    from pprint import pformat

    assert config.cache is not None
    cache = config.cache
    tw = TerminalWriter()
    tw.line(f"cachedir: {cache._cachedir}")
    if not cache._cachedir.is_dir():
        tw.line("cache is empty")
        return 0
    pattern = config.option.cacheshow[0]
    if pattern is None:
        pattern = "*"

    values = cache._cachedir / Cache._CACHE_PREFIX_VALUES
    unreadable = object()
    tw.sep("-", f"cache values for {pattern!r}")
    for path in _shown_files(values, pattern):
        key = str(path.relative_to(values))
        value = cache.get(key, unreadable)
        if value is unreadable:
            tw.line(f"{key} contains unreadable content, will be ignored")
            continue
        tw.line(f"{key} contains:")
        for line in pformat(value).splitlines():
            tw.line(f"  {line}")

    dirs = cache._cachedir / Cache._CACHE_PREFIX_DIRS
    if dirs.is_dir():
        tw.sep("-", f"cache directories for {pattern!r}")
        for path in _shown_files(dirs, pattern):
            name = str(path.relative_to(cache._cachedir))
            tw.line(f"{name} is a file of length {path.stat().st_size}")
    return 0
