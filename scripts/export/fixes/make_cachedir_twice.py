"""A deterministic regression test for #12381 (fixed in 8.2.2 without one)."""

from __future__ import annotations

from export.material import Branch


FIX = Branch(
    slug="make-cachedir-twice",
    order=2,
    layer="publish-race",
    definitions=(),
    issue=12381,
    issue_open=False,
    max_module_lines=0,
    max_test_lines=30,
    subject="Add a regression test for concurrent cache directory creation",
    message="""\
#12381 (concurrent sessions creating the cache directory at once, the
losers failing with "Directory not empty") was fixed in #12408 without an
automated test: a deterministic one needed a way to run the creation twice.
`_make_cachedir(target)` is that function now: creating the directory a
second time on the same target takes the same path as the process that
loses the race, whose rename fails with ENOTEMPTY (EEXIST on Windows).

The test fails with "[Errno 39] Directory not empty" when ENOTEMPTY is no
longer ignored.""",
    fragment_type="contrib",
    fragment="""\
Added a deterministic regression test for concurrent creation of the cache directory.
""",
    tests='''

def test_make_cachedir_when_it_already_exists(tmp_path: Path) -> None:
    """The process that loses the race to create the cache directory goes on
    with the winner's directory and leaves no temporary directory behind (#12381)."""
    from _pytest.cacheprovider import _make_cachedir
    from _pytest.cacheprovider import CACHEDIR_FILES

    target = tmp_path / ".pytest_cache"
    _make_cachedir(target)
    _make_cachedir(target)

    assert sorted(p.name for p in target.iterdir()) == sorted(CACHEDIR_FILES)
    assert list(tmp_path.glob("pytest-cache-files-*")) == []
''',
    description="""\
#12381 was fixed in #12408 without an automated test ("It's possible to write a
deterministic test case for this, but somewhat of a hassle"); the review noted
that it needs a utility method that can be invoked twice.  `_make_cachedir` is
that method now, so this adds the test: the second call on the same target
takes the path of the process that loses the race (the rename fails with
ENOTEMPTY, EEXIST on Windows), must not raise, and must clean up its
temporary directory.

No change to the code.  Checked that the test fails when `errno.ENOTEMPTY` is
removed from the errors `_make_cachedir` ignores (`OSError: [Errno 39]
Directory not empty`).""",
    mutation=("(errno.ENOTEMPTY, errno.EEXIST)", "(errno.EEXIST,)"),
)
