"""A cache dir path that is a file gives a clear error instead of a rename's errno.

Fix: cache-dir-not-a-directory
Bug: -
Affects: every release (8.2.0 and later: "[Errno 20] Not a directory" from a rename)
Needs: permissions
Replaces: Cache._ensure_cache_dir_and_supporting_files

When ``cache_dir`` names an existing regular file, upstream tries to publish
a directory onto it and the user sees a bare errno from ``rename``.  The
file is never touched either way; this layer says what is wrong.
"""

from __future__ import annotations


def _refuse_non_directory(target: Path) -> None:
    """Raise ``NotADirectoryError`` naming ``target`` if it exists and is no directory."""
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR,
            "the cache directory path exists and is not a directory",
            str(target),
        )


class Cache:
    def _ensure_cache_dir_and_supporting_files(self) -> None:
        """Publish the cache dir, unless it exists (it never gets boilerplate added)."""
        if not self._cachedir.is_dir():
            _refuse_non_directory(self._cachedir)
            _make_cachedir(self._cachedir)
