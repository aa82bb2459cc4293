"""9.2.0: ``cache_dir = ../x`` stops pytest with INTERNALERROR at configure."""

from __future__ import annotations

from export.material import Branch


FIX = Branch(
    slug="cache-dir-dotdot",
    order=1,
    layer="keys-confined",
    definitions=("Cache._join_within",),
    issue=None,
    issue_open=True,
    max_module_lines=20,
    subject="Fix INTERNALERROR with a cache_dir containing '..'",
    message="""\
Since keys are kept inside the cache directory (#14884), `_join_within`
normalizes the joined path but compares it with a base that is not
normalized.  With `cache_dir = ../shared` (or any `cache_dir` with a `..`
part) every key looks as if it escaped the cache directory, and pytest stops
at configure with INTERNALERROR: "'cache/lastfailed' is not allowed to escape
the cache directory".

Normalize the base as well before checking that the key stays inside it.""",
    fragment_type="bugfix",
    fragment="""\
Fixed an ``INTERNALERROR`` at startup when :confval:`cache_dir` contains ``..``,
for example ``cache_dir = ../.pytest_cache``. Regressed in pytest 9.2.0.
""",
    tests='''

def test_cache_dir_with_parent_reference(pytester: Pytester) -> None:
    """A ``cache_dir`` containing ``..`` is usable, not reported as escaping itself."""
    pytester.mkdir("sub")
    pytester.makeini("[pytest]\\ncache_dir = sub/../custom_cache\\n")
    pytester.makepyfile("def test_fail(): assert False")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert pytester.path.joinpath("custom_cache/v/cache/lastfailed").is_file()


def test_join_within_normalizes_base() -> None:
    from _pytest.cacheprovider import Cache

    base = Path("root", "sub", "..", "cache")
    assert Cache._join_within(base, "a/b") == Path("root", "cache", "a", "b")
    with pytest.raises(ValueError):
        Cache._join_within(base, "../other")
''',
    description="""\
pytest 9.2.0 stops with an INTERNALERROR when `cache_dir` contains `..`:

```ini
[pytest]
cache_dir = ../.pytest_cache
```

```
INTERNALERROR> ValueError: 'cache/lastfailed' is not allowed to escape the cache directory
```

`Cache._join_within` (added in #14884) normalizes the joined path but not the
base it compares it with, so every key looks as if it left the cache
directory.  This normalizes the base too.  Keys that really leave the cache
directory are still refused.

Tested with a pytester test that runs with `cache_dir = sub/../custom_cache`
(INTERNALERROR before the change) and a unit test of `_join_within`.""",
    issue_title="INTERNALERROR when cache_dir contains '..' (pytest 9.2.0)",
    issue_text="""\
With pytest 9.2.0, a `cache_dir` that contains a `..` part stops every run at
startup:

```ini
# pytest.ini
[pytest]
cache_dir = ../.pytest_cache
```

```
$ pytest
INTERNALERROR> ...
INTERNALERROR> ValueError: 'cache/lastfailed' is not allowed to escape the cache directory
```

pytest 9.1.1 accepts the same configuration.  A relative `cache_dir` is joined
to the rootdir without being normalized (`/repo/../.pytest_cache`), and
`Cache._join_within` (#14884) compares the normalized joined path with that
unnormalized base, so every key looks as if it escaped.  Normalizing the base
in `_join_within` fixes it; I have a pull request ready with a test.""",
)
