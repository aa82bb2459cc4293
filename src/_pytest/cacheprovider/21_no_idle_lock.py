"""A session that changes nothing still takes the merge lock and touches ``merge.lock``.

Fix: no-idle-lock
Bug: -
Affects: the fork before this layer (each merged write locks, and the lock holder touches the lock file)
Needs: lock-never-costs-data, skip-equal-writes
Replaces: Cache._store

Every session sets ``cache/nodeids`` at its end, usually to what is on disk
already.  When the file holds exactly the new bytes there is nothing to
merge (every merge policy gives ``merge(v, v) == v``) and nothing to write:
the lock is not taken either, so a steady-state session leaves the cache
untouched.  A session that skips this way is equivalent to one that wrote
the same bytes at the moment it looked.
"""

from __future__ import annotations


class Cache:
    def _store(self, key: str, path: str, value: object) -> None:
        """Write ``value`` atomically; keys with a merge policy merge with the disk first.

        A merged key whose file already holds these exact bytes is left
        alone, unlocked.
        """
        merge = self._merge_policies.get(key)
        data = _dumps(value)
        if merge is None:
            _write_atomic(path, data)
        elif not _holds(path, data.encode("UTF-8")):
            self._merge_store(key, path, value, merge, data)
