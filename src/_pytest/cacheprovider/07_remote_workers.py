"""Remote xdist workers select by their own cache: ``--lf``, ``--ff`` and ``--nf`` pick the wrong tests.

Fix: remote-workers
Bug: pytest-xdist#326 (open since 2018: --lf and --ff rerun everything with --tx ssh=...)
Affects: every release
Needs: -
Replaces: -

A worker started elsewhere (``--tx ssh=...``, ``socket=...``,
``popen//chdir=DIR``) has a cache of its own: xdist copies no dot-directory.
Each worker collects and deselects by its own ``lastfailed`` and ``nodeids``
while the controller records the outcomes in its cache, so ``--lf`` reruns
stale failures or every test, ``--nf`` puts other tests first, and workers
that disagree stop the run ("Different tests were collected").

Here the controller sends its ``lastfailed`` and ``nodeids`` to every such
worker, which selects and orders by them before it collects, exactly as a
worker in the controller's directory does.  The worker's cache itself is left
as it is: ``cache.get``, ``set`` and ``mkdir`` from its tests use it as before.
``--nf`` still orders new files by their modification time on the worker, so
a copy that keeps timestamps (``rsync -t``, ``cp -p``) orders them the same.
"""

from __future__ import annotations

import types
from typing import Any


# In workerinput: the controller's values that select tests, for a remote worker.
_CONTROLLER_SELECTION = "pytest_cache_controller_selection"
# The values the --lf/--ff/--nf plugins read when they are made, with their defaults.
_SELECTION_KEYS = (("cache/lastfailed", dict), ("cache/nodeids", list))


def _remake_selection_plugins(config: Config, values: dict[str, Any]) -> None:
    """Make the ``--lf``/``--ff``/``--nf`` plugins again, reading ``values`` instead of the cache.

    They read ``cache/lastfailed`` and ``cache/nodeids`` once, when they are made
    (each release its own way: 9.2 parses node ids), so they are made anew
    rather than patched.  Call it in ``pytest_configure``, before collection.
    """
    pm = config.pluginmanager
    for name in ("lfplugin-collwrapper", "lfplugin", "nfplugin"):
        pm.unregister(name=name)
    cache = config.cache
    # The constructors call only ``config.cache.get(key, default)``.
    config.cache = types.SimpleNamespace(get=values.get)  # type: ignore[assignment]
    try:
        lfplugin, nfplugin = LFPlugin(config), NFPlugin(config)
    finally:
        config.cache = cache
    pm.register(lfplugin, "lfplugin")
    pm.register(nfplugin, "nfplugin")


@hookimpl(optionalhook=True, specname="pytest_configure_node")
def pytest_configure_node_selection(node: Any) -> None:
    """xdist, in the controller: send a remote worker what selects and orders tests."""
    config = node.config
    spec = node.gateway.spec
    # A worker xdist starts in our own directory reads our cache itself.
    if spec.popen and not spec.chdir and not spec.via:
        return
    if any(config.getoption(name) for name in ("lf", "failedfirst", "newfirst")):
        assert config.cache is not None
        node.workerinput[_CONTROLLER_SELECTION] = {
            key: config.cache.get(key, kind()) for key, kind in _SELECTION_KEYS
        }


@hookimpl(trylast=True, specname="pytest_configure")
def pytest_configure_worker_selection(config: Config) -> None:
    """xdist, in a remote worker: select and order by what the controller sent."""
    workerinput = getattr(config, "workerinput", None)  # Tests set it to True.
    values = (
        workerinput.get(_CONTROLLER_SELECTION)
        if isinstance(workerinput, dict)
        else None
    )
    if values is not None:
        _remake_selection_plugins(config, values)
