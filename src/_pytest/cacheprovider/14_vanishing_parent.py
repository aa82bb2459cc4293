"""``Cache.set`` fails when a concurrent ``--cache-clear`` removes its folder mid-write.

Fix: vanishing-parent
Bug: -
Affects: every release (stock: the same ENOENT, as "cache could not write path")
Needs: atomic-set
Replaces: Cache.set

``set`` creates the value's folder, then writes the value into it.  When
another session's ``--cache-clear`` (or the removal of an orphaned folder)
takes ``v/`` between the two steps, the write fails with ENOENT, the value
is lost and a ``PytestCacheWarning`` turns up in a run that did nothing
wrong, an error under ``filterwarnings = error``.  The two steps are retried
instead: the value is written after the clear, as if ``set`` had come a
moment later.
"""

from __future__ import annotations


# How many times set() starts over when its folder vanishes between creating it
# and writing into it; each time another process must have removed it again.
_VANISHED_FOLDER_ATTEMPTS = 5


class Cache:
    def set(self, key: str, value: object) -> None:
        """Save ``value`` under ``key``, replacing the file in one step.

        A reader in another process, such as an xdist worker or a concurrent
        session, gets the old value or the new one, never a partial file.
        Should another process remove the value's folder meanwhile (a
        concurrent ``--cache-clear``), the folder is made again and the value
        written after all.  Failing to write is reported as a
        ``PytestCacheWarning``.

        :param key:
            A ``/`` separated name that stays inside the cache directory;
            start it with your plugin's or application's name.
        :param value:
            Anything the :mod:`json` module can encode: basic types and
            nested lists and dicts of them.
        """
        path = self._getvaluepath(key)
        for attempt in range(1, _VANISHED_FOLDER_ATTEMPTS + 1):
            last = attempt == _VANISHED_FOLDER_ATTEMPTS
            try:
                self._mkdir(path.parent)
            except FileNotFoundError as exc:  # ENOENT: an ancestor went meanwhile.
                if not last:
                    continue
                self.warn(f"could not create cache path {path}: {exc}", _ispytest=True)
                return
            except OSError as exc:
                self.warn(f"could not create cache path {path}: {exc}", _ispytest=True)
                return
            try:
                self._store(key, path, value)
            except FileNotFoundError as exc:  # ENOENT: the folder went meanwhile.
                if not last:
                    continue
                self.warn(f"cache could not write path {path}: {exc}", _ispytest=True)
            except OSError as exc:
                self.warn(f"cache could not write path {path}: {exc}", _ispytest=True)
            return
