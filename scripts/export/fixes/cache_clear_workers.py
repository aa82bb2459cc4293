"""``--cache-clear`` runs again in every xdist worker (#6670)."""

from __future__ import annotations

from export.material import Branch


FIX = Branch(
    slug="cache-clear-workers",
    order=3,
    layer="cache-clear",
    definitions=("Cache.for_config", "pytest_configure_node", "pytest_runtestloop"),
    issue=6670,
    issue_open=True,
    max_module_lines=60,
    subject="Clear the cache only once with --cache-clear under xdist",
    message="""\
pytest-xdist passes the controller's command line to every worker, so with
`--cache-clear -n N` each worker clears the shared cache directory again
while the others are starting or already running: workers delete the same
trees at once (the `rm_rf` warnings of #6670), and values the controller or
a running worker wrote meanwhile are lost.  A worker that xdist starts to
replace a crashed one clears the cache in the middle of the run.

The controller clears the cache; a worker clears only the cache it was
asked to, which the controller does for workers that start with the run and
have a cache directory of their own (remote workers).""",
    fragment_type="bugfix",
    fragment="""\
``--cache-clear`` no longer clears the cache again in each pytest-xdist worker,
which removed values written since the run started and could warn about failed removals.
""",
    tests='''

def test_cache_clear_not_repeated_in_worker(
    pytester: Pytester, monkeypatch: MonkeyPatch
) -> None:
    """A worker's config must not clear the cache its controller uses (#6670)."""
    from _pytest.cacheprovider import Cache

    config = pytester.parseconfig("--cache-clear")
    Cache.for_config(config, _ispytest=True).set("my/value", 1)
    monkeypatch.setattr(config, "workerinput", {}, raising=False)
    assert Cache.for_config(config, _ispytest=True).get("my/value", None) == 1


def test_cache_clear_with_xdist(pytester: Pytester, monkeypatch: MonkeyPatch) -> None:
    """Values written after the controller cleared the cache survive the workers' start (#6670)."""
    pytest.importorskip("xdist")
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makeconftest(
        """
        def pytest_sessionstart(session):
            if not hasattr(session.config, "workerinput"):
                session.config.cache.set("my/value", 1)
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_value(request, i):
            assert request.config.cache.get("my/value", None) == 1
        """
    )
    result = pytester.runpytest_subprocess("--cache-clear", "-n", "2")
    result.assert_outcomes(passed=4)
''',
    description="""\
closes #6670

With `--cache-clear -n N`, pytest-xdist hands the controller's arguments to
every worker, and each worker's `Cache.for_config` clears the shared cache
directory again.  The workers delete the same directories concurrently
(the `rm_rf` warnings reported in #6670), and anything written to the cache
after the controller cleared it is lost when the workers start.  A worker
started later to replace a crashed one clears the cache in the middle of the
run.

Now the process that owns the run clears the cache.  The controller tells the
workers it starts with the run to clear their own cache only when it is not
the controller's (remote workers with `--tx ssh=...` have their own).

Tested with a unit test (a config carrying `workerinput` does not clear) and a
pytester run with `--cache-clear -n 2` where a value written in the
controller's `pytest_sessionstart` is read by every test (it is gone before
this change); the second test is skipped without pytest-xdist.""",
)
