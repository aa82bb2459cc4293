"""``--cache-clear`` runs again in a late xdist worker and wipes what others wrote.

Fix: cache-clear-once
Bug: -  (related: #6670, rm_rf warnings with xdist and --cache-clear, open)
Affects: every release
Needs: -
Replaces: Cache.for_config

xdist passes the controller's arguments to every worker, so each worker's
``Cache.for_config`` clears the cache again.  Normally no test runs before
every worker has collected, but a worker started late (replacing a crashed
one) clears the values the running workers already wrote.  The clear belongs
to the process that owns the run.
"""

from __future__ import annotations


class Cache:
    @classmethod
    def for_config(cls, config: Config, *, _ispytest: bool = False) -> Cache:
        """Create the Cache instance for a Config, honouring ``--cache-clear``.

        The clear runs only in the process that owns the run, never in an
        xdist worker: workers share the controller's cache, and one started
        late (replacing a crashed worker) would wipe what the others already
        wrote.

        :meta private:
        """
        check_ispytest(_ispytest)
        cachedir = cls.cache_dir_from_config(config, _ispytest=True)
        clear = config.getoption("cacheclear") and not hasattr(config, "workerinput")
        if clear and cachedir.is_dir():
            cls.clear_cache(cachedir, _ispytest=True)
        return cls(cachedir, config, _ispytest=True)
