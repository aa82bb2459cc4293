"""Publish race: xdist workers creating ``.pytest_cache`` at once crash.

Fix: publish-race
Bug: #12381 (closed; fixed upstream in 8.2.2 by #12408, which has no regression test)
Affects: 8.2.0, 8.2.1
Needs: -
Replaces: Cache._ensure_cache_dir_and_supporting_files

pytest 8.2.0 builds the cache dir in a private ``pytest-cache-files-*`` sibling
and renames it into place.  When several processes create it at once, every
rename after the first fails with ENOTEMPTY (EEXIST elsewhere) and the session
fixture that called ``config.cache.mkdir()`` errors.  The loser of that race
has nothing to do: the winner's directory is complete.  This layer is the
minimal fork of 8.2.0: only the publish step changes.
"""

import errno
import sys


def _lost_publish_race(error: OSError, target: Path) -> bool:
    """Whether renaming a directory onto ``target`` failed because another process won.

    POSIX ``rename(2)`` refuses to replace a non-empty directory with ENOTEMPTY
    (Linux, macOS) or EEXIST (other systems allowed by POSIX); Windows refuses
    any existing target with EEXIST, or with access denied while the winner's
    directory is being used.  Either way the error only means a lost race when
    ``target`` now is a directory: the winner's, complete.
    """
    lost_race_errnos = {errno.ENOTEMPTY, errno.EEXIST}
    if sys.platform == "win32":
        lost_race_errnos.add(errno.EACCES)
    return error.errno in lost_race_errnos and target.is_dir()


class Cache:
    def _ensure_cache_dir_and_supporting_files(self) -> None:
        """Create the cache dir and its supporting files, unless it exists.

        The directory is filled under a private name and published by one
        rename; a process that loses that race to another keeps the winner's
        directory and lets its own be removed (#12381).
        """
        if self._cachedir.is_dir():
            return
        self._cachedir.parent.mkdir(parents=True, exist_ok=True)
        supporting = {
            "README.md": README_CONTENT.encode("UTF-8"),
            ".gitignore": b"# Created by pytest automatically.\n*\n",
            "CACHEDIR.TAG": CACHEDIR_TAG_CONTENT,
        }
        with tempfile.TemporaryDirectory(
            prefix="pytest-cache-files-", dir=self._cachedir.parent
        ) as name:
            staging = Path(name)
            for filename, content in supporting.items():
                (staging / filename).write_bytes(content)
            try:
                staging.rename(self._cachedir)
            except OSError as e:
                if not _lost_publish_race(e, self._cachedir):
                    raise
            else:
                # The context manager removes whatever has the private name on
                # exit: leave it an empty directory instead of an error.
                staging.mkdir()
