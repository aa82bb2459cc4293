"""Windows: a ``get`` while another process replaces the value returns the default.

Fix: windows-read-retry
Bug: -
Affects: every release, on Windows, once values are replaced atomically
Needs: -
Replaces: Cache.get

On Windows a file cannot be opened while another process renames a file over
it: the reader gets a sharing violation (access denied) for a moment, and
upstream's ``get`` takes any ``OSError`` for "no value".  A reader there tries
again, a bounded number of times, before it gives up; everywhere else an
unreadable value is the default at once, as upstream does.
"""

from __future__ import annotations

import sys
import time
from typing import Any


_WINDOWS_READ_ATTEMPTS = 20
_WINDOWS_READ_DELAY = 0.01


class Cache:
    def get(self, key: str, default: Any) -> Any:
        """Return the value saved under ``key``, or ``default`` if there is none.

        A value that cannot be read or decoded counts as none.

        :param key:
            A ``/`` separated name that stays inside the cache directory;
            start it with your plugin's or application's name.
        :param default:
            What to return for a missing or unreadable value.
        """
        path = self._getvaluepath(key)
        attempts = _WINDOWS_READ_ATTEMPTS if sys.platform == "win32" else 1
        for attempt in range(1, attempts + 1):
            try:
                data = path.read_bytes()
            except PermissionError:
                # Windows: a concurrent os.replace holds the name for a moment.
                if attempt == attempts:
                    break
                time.sleep(_WINDOWS_READ_DELAY)
                continue
            except OSError:  # ENOENT, EISDIR, EACCES on POSIX...: no value.
                break
            try:
                return json.loads(data)
            except ValueError:  # Corrupt or not UTF-8 (UnicodeDecodeError).
                break
        return default
