"""CI shards: the caches of a suite run as several jobs cannot be merged soundly.

Fix: shard-merge
Bug: pytest#3139 (2018: --lf on CI needs "a discussion about sound solutions"; only --lfnf came of it)
Affects: every release
Needs: lastfailed-merge, remote-workers
Replaces: -

A suite split into shards (a CI matrix, pytest-split, pytest-shard) leaves one
cache per shard, each holding the outcomes of its own tests on top of the
state it restored.  A cache entry cannot be updated by several jobs, and a
union of the shards' ``lastfailed`` keeps a failure that another shard fixed,
so ``--lf`` after a sharded run is wrong whatever a pipeline does.

Here each session records the node ids whose outcome it decided in
``cache/lastrun`` (the controller, at session end), and
``--cache-merge-from=DIR`` (repeatable, glob patterns allowed) folds shard
caches into this one when pytest starts, before any test is selected: a test
that a shard ran takes that shard's outcome (a failure if any shard that ran
it failed it), a test no shard ran keeps this cache's entry, node ids are
united, and stepwise is left alone.  Only the cache's own values are read,
never paths, pids or hosts, so the shards may come from other machines.  A
shard cache that is missing, corrupt or records no session is named on stderr
and skipped, the others are merged, and a run that would have passed exits
with status 4 (usage error) instead.
"""

from __future__ import annotations

import contextlib
import glob
import json

from _pytest.stash import StashKey


# In the controller's stash: how many shard caches --cache-merge-from skipped.
_SHARDS_SKIPPED = StashKey[int]()


def _read_shard(cachedir: Path) -> tuple[set[str], dict[str, object], list[str]]:
    """A shard cache's last session: the node ids it decided, its lastfailed, its nodeids.

    ``ValueError`` saying why for a cache that is missing, records no session
    (no ``cache/lastrun``: no session of this pytest ended there) or holds a
    value that is unreadable or not JSON; ``TypeError`` for a value of the
    wrong type.  A missing lastfailed or nodeids is empty, as a session that
    saw no failure leaves it.
    """
    if not cachedir.is_dir():
        raise ValueError("no such directory")
    values: list[Any] = []
    for key, kind in (("cache/lastrun", list), *_SELECTION_KEYS):
        path = cachedir / Cache._CACHE_PREFIX_VALUES / key
        try:
            value = json.loads(path.read_bytes().decode())
        except FileNotFoundError:
            if key == "cache/lastrun":
                raise ValueError(f"{path} missing: it records no session") from None
            value = kind()
        except (OSError, ValueError) as e:  # EACCES, EISDIR; not JSON, not UTF-8.
            raise ValueError(f"{path} unreadable: {e}") from None
        if not isinstance(value, kind):
            raise TypeError(f"{path} holds no JSON {kind.__name__}")
        values.append(value)
    ran, lastfailed, nodeids = values
    return {str(n) for n in ran}, lastfailed, [str(n) for n in nodeids]


def _fold_shards(
    lastfailed: dict[str, object],
    shards: list[tuple[set[str], dict[str, object]]],
) -> dict[str, object]:
    """``lastfailed`` after the shards' runs: what each shard ran takes its outcome there.

    A test no shard ran keeps its entry; one that several shards ran failed
    if any of them recorded a failure.
    """
    ran = set().union(*(r for r, _ in shards))
    merged = {n: v for n, v in lastfailed.items() if n not in ran}
    for r, theirs in shards:
        merged.update((n, v) for n, v in theirs.items() if n in r)
    return merged


@hookimpl(specname="pytest_addoption")
def pytest_addoption_cache_merge(parser: Parser) -> None:
    parser.getgroup("general").addoption(
        "--cache-merge-from",
        action="append",
        default=[],
        dest="cache_merge_from",
        metavar="DIR",
        help="Before tests are selected, fold the cache DIR that a shard of this "
        "suite saved (repeatable, glob patterns allowed) into this cache: a test "
        "a shard ran takes that shard's outcome, others keep theirs. A shard "
        "cache that cannot be merged is skipped and makes a passing run exit 4.",
    )


@hookimpl(trylast=True, specname="pytest_configure")
def pytest_configure_cache_merge(config: Config) -> None:
    """Fold the shard caches of ``--cache-merge-from`` into this one, in the controller."""
    patterns = config.getoption("cache_merge_from")
    if not patterns or hasattr(config, "workerinput"):
        return
    cache = config.cache
    assert cache is not None
    shards = []
    skipped = 0
    for pattern in patterns:
        for found in sorted(glob.glob(pattern)) or [pattern]:
            try:
                shards.append(_read_shard(Path(found)))
            except (TypeError, ValueError) as e:
                skipped += 1
                sys.stderr.write(f"--cache-merge-from: skipped {found}: {e}\n")
    # This cache's own values; a corrupt one counts as empty (as the plugins take it).
    saved_lastfailed = cache.get("cache/lastfailed", None)
    lastfailed = saved_lastfailed if isinstance(saved_lastfailed, dict) else {}
    saved_nodeids = cache.get("cache/nodeids", None)
    nodeids = saved_nodeids if isinstance(saved_nodeids, list) else []
    values = {
        "cache/lastfailed": _fold_shards(lastfailed, [(r, f) for r, f, _ in shards]),
        "cache/nodeids": sorted(set(nodeids).union(*(n for _, _, n in shards))),
    }
    for key, value in values.items():
        cache.set(key, value)
    _remake_selection_plugins(config, values)
    config.stash[_SHARDS_SKIPPED] = skipped


@hookimpl(specname="pytest_sessionfinish")
def pytest_sessionfinish_cache_merge(session: Session) -> None:
    # A merge that left a shard out must not pass unnoticed in CI.
    if (
        session.config.stash.get(_SHARDS_SKIPPED, 0)
        and session.exitstatus == ExitCode.OK
    ):
        session.exitstatus = ExitCode.USAGE_ERROR


class LFPlugin:
    @hookimpl(specname="pytest_sessionfinish")
    def pytest_sessionfinish_lastrun(self) -> None:
        """Record in ``cache/lastrun`` the node ids whose outcome this session decided."""
        config = self.config
        if config.getoption("cacheshow") or hasattr(config, "workerinput"):
            return
        cache = config.cache
        assert cache is not None
        # Silently, when it cannot be written: no release writes it, nor warns.
        path = cache._value_file("cache/lastrun")
        with contextlib.suppress(PytestCacheWarning):
            cache._write_value(path, _encode(sorted(self._owned)))
