"""The atomic write and the skipped redundant writes: behaviour, never timing.

Costs are measured by ``scripts/bench.py``; these tests only pin down what the
write must do: write atomically (a new object straight into its file, which no
reader sees a part of), report failures, recreate a directory removed behind
its back, refuse escaping keys, and leave a file alone when it already holds
the value.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import errno
import json
import os
from pathlib import Path
import shutil
from typing import Any
import warnings

from race_harness import require

from _pytest import cacheprovider
from _pytest.pytester import Pytester
import pytest


def snapshot(cachedir: Path) -> dict[str, tuple[int, int, int]]:
    """Inode, size and mtime of every file below ``cachedir``: a rewrite changes the inode."""
    out = {}
    for p in sorted(cachedir.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(cachedir))] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


class TestLowLevelWrite:
    def test_reader_during_the_write_sees_the_old_value(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Half of the bytes are written when the target is read: it still holds the old value."""
        target = tmp_path / "value"
        target.write_text('"old"')
        real_open = Path.open
        seen: list[str] = []

        def open_(
            self: Path, mode: str = "r", *args: object, **kwargs: object
        ) -> object:
            f = real_open(self, mode, *args, **kwargs)  # type: ignore[call-overload]
            if "x" not in mode:
                return f
            real_write = f.write

            def half_then_read(data: bytes) -> int:
                if seen:  # The rest, after the short write.
                    return real_write(data)  # type: ignore[no-any-return]
                done: int = real_write(bytes(data)[: len(data) // 2])
                seen.append(target.read_text())
                return done

            f.write = half_then_read
            return f

        with monkeypatch.context() as m:
            m.setattr(Path, "open", open_)
            cacheprovider._write_atomic(target, b'"new value"', tmp_path, {})
        assert seen == ['"old"']
        assert target.read_text() == '"new value"'
        assert list(tmp_path.iterdir()) == [target]

    def test_patched_path_open_is_honoured(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Tests that simulate I/O errors by patching ``Path.open`` (upstream's do) still see them."""
        cache = pytester.parseconfigure().cache
        assert cache is not None
        cache.set("test/broken", [])

        def failing_open(self: Path, *args: object, **kwargs: object) -> object:
            raise OSError(errno.ENOSPC, "No space left on device")

        with monkeypatch.context() as m:
            m.setattr(Path, "open", failing_open)
            with pytest.warns(pytest.PytestCacheWarning, match="No space left"):
                cache.set("test/broken", [])  # The same value: written anyway.

    def test_directory_removed_behind_its_back_is_made_again(
        self, pytester: Pytester
    ) -> None:
        cache = pytester.parseconfigure().cache
        assert cache is not None
        cache.set("plugin/a", 1)
        shutil.rmtree(cache._cachedir)  # Another process's --cache-clear, or rm -rf.
        cache.set("plugin/b", 2)
        assert cache.get("plugin/b", None) == 2
        assert (cache._cachedir / "CACHEDIR.TAG").is_file()

    @pytest.mark.parametrize(
        "name",
        ["a", "a/b", "a//b", "a/b/", "a/./b", "a/../b", ".hidden", "a.b/c.d", "x:y"],
    )
    def test_joined_path_is_the_normalized_one(self, tmp_path: Path, name: str) -> None:
        expected = Path(os.path.normpath(os.path.join(tmp_path, name)))
        assert cacheprovider.Cache._join_within(tmp_path, name) == expected

    @pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd"])
    def test_escaping_name_is_refused(self, tmp_path: Path, name: str) -> None:
        with pytest.raises(ValueError, match="not allowed to escape"):
            cacheprovider.Cache._join_within(tmp_path, name)


class TestNewValue:
    """A new value's file: made by the write itself when no part of it parses."""

    @staticmethod
    def set_with_a_pause(
        cache: pytest.Cache,
        monkeypatch: pytest.MonkeyPatch,
        key: str,
        value: object,
        meanwhile: Callable[[], None],
        *,
        before_open: bool = False,
    ) -> list[str]:
        """``cache.set(key, value)``; ``meanwhile()`` runs once, mid-write or just before its open.

        Mid-write is after half of the bytes of the write's first file (the
        value file or a private one) reached it.  Returns the names that files
        were renamed onto (``os.replace``) meanwhile and after.
        """
        cache.set("plugin/other", 0)  # The cache dir and the value's folder are made.
        real_open, real_replace = Path.open, os.replace
        renamed: list[str] = []
        done: list[bool] = []

        def open_(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if done or not set(mode) & set("wx"):
                return real_open(self, mode, *args, **kwargs)
            if before_open:
                done.append(True)
                meanwhile()
                return real_open(self, mode, *args, **kwargs)
            f: Any = real_open(self, mode, *args, **kwargs)
            real_write = f.write

            def half_then_meanwhile(data: Any) -> int:
                if done:
                    written: int = real_write(data)
                    return written
                done.append(True)
                written = real_write(data[: len(data) // 2])
                f.flush()
                meanwhile()
                written += real_write(data[len(data) // 2 :])
                return written

            f.write = half_then_meanwhile
            return f

        def replace(src: Any, dst: Any) -> None:
            renamed.append(os.path.basename(dst))
            real_replace(src, dst)

        with monkeypatch.context() as m, warnings.catch_warnings():
            warnings.simplefilter("error")  # No warning: stock gives none here.
            m.setattr(Path, "open", open_)
            m.setattr(os, "replace", replace)
            cache.set(key, value)
        require(done, "the write was never paused")
        return renamed

    @pytest.mark.layer("atomic-set")
    def test_reader_of_a_new_number_never_sees_a_part_of_it(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A prefix of a number is a number: a new one must not appear in its file bit by bit."""
        cache = pytester.parseconfigure().cache
        assert cache is not None
        seen: list[object] = []
        meanwhile = lambda: seen.append(cache.get("plugin/count", "none"))  # noqa: E731
        self.set_with_a_pause(cache, monkeypatch, "plugin/count", 1234567890, meanwhile)
        assert seen == ["none"], (
            f"[atomic-set] a reader got {seen[0]!r} from a half-written new value"
        )
        assert cache.get("plugin/count", None) == 1234567890

    def test_new_object_is_written_straight_into_its_file(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No part of an object parses: a reader mid-write gets no value; no rename is needed."""
        cache = pytester.parseconfigure().cache
        assert cache is not None
        value = {"payload": "x" * 1000}
        seen: list[object] = []
        meanwhile = lambda: seen.append(cache.get("plugin/new", "none"))  # noqa: E731
        renamed = self.set_with_a_pause(
            cache, monkeypatch, "plugin/new", value, meanwhile
        )
        assert seen == ["none"]
        assert cache.get("plugin/new", None) == value
        assert renamed == []
        assert sorted(cache._cachedir.rglob("pytest-cache-files-*")) == []

    @pytest.mark.layer("atomic-set")
    def test_writer_of_a_new_value_meeting_another_mid_write_leaves_one_whole(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """B writes the same new key while A is half-way: the file ends as A's or B's, whole."""
        cache = pytester.parseconfigure().cache
        assert cache is not None
        a, b = {"by": "a" * 100}, {"by": "b" * 100}
        meanwhile = lambda: cache.set("plugin/new", b)  # noqa: E731
        self.set_with_a_pause(cache, monkeypatch, "plugin/new", a, meanwhile)
        text = cache._getvaluepath("plugin/new").read_text()
        assert json.loads(text) in (a, b), (
            f"[atomic-set] the value file is a mix: {text!r}"
        )
        assert sorted(cache._cachedir.rglob("pytest-cache-files-*")) == []

    def test_writer_that_finds_a_new_value_made_meanwhile_replaces_it(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """B creates the file between A's look and A's open: A's value replaces B's, whole."""
        cache = pytester.parseconfigure().cache
        assert cache is not None
        a, b = {"by": "a"}, {"by": "b", "and": "more"}
        meanwhile = lambda: cache.set("plugin/new", b)  # noqa: E731
        self.set_with_a_pause(
            cache, monkeypatch, "plugin/new", a, meanwhile, before_open=True
        )
        assert cache.get("plugin/new", None) == a
        assert sorted(cache._cachedir.rglob("pytest-cache-files-*")) == []


class TestSkipEqualWrites:
    @pytest.mark.layer("atomic-set")
    def test_same_value_leaves_the_file_alone(self, pytester: Pytester) -> None:
        cache = pytester.parseconfigure().cache
        assert cache is not None
        value = {"answer": 42, "items": list(range(100))}
        cache.set("plugin/value", value)
        before = snapshot(cache._cachedir)
        cache.set("plugin/value", value)
        cache.set("plugin/value", dict(value))
        after = snapshot(cache._cachedir)
        assert after == before, (
            f"[atomic-set] an unchanged value was written again: {before} -> {after}"
        )

    def test_changed_value_is_written(self, pytester: Pytester) -> None:
        cache = pytester.parseconfigure().cache
        assert cache is not None
        for value in (1, 2, 1, [1], "1"):
            cache.set("plugin/value", value)
            assert cache.get("plugin/value", None) == value

    def test_value_another_process_changed_is_rewritten(
        self, pytester: Pytester
    ) -> None:
        """A remembered value proves nothing about the disk: a skip needs the file's bytes."""
        cache = pytester.parseconfigure().cache
        assert cache is not None
        cache.set("plugin/value", "ours")
        path = cache._getvaluepath("plugin/value")
        path.write_text('"mine"')  # Another process, in effect (same size).
        cache.set("plugin/value", "ours")
        assert cache.get("plugin/value", None) == "ours"

    def test_large_value_of_the_same_size_is_compared(self, pytester: Pytester) -> None:
        cache = pytester.parseconfigure().cache
        assert cache is not None
        big = {f"test_{i:06d}": True for i in range(20_000)}
        cache.set("cache/big", big)
        before = snapshot(cache._cachedir)
        cache.set("cache/big", big)
        assert snapshot(cache._cachedir) == before
        changed = dict(big)
        changed.pop("test_019999")
        changed["test_01999x"] = True  # Same size on disk, other bytes.
        text = json.dumps(big, ensure_ascii=False, indent=2)
        assert len(json.dumps(changed, ensure_ascii=False, indent=2)) == len(text)
        cache.set("cache/big", changed)
        assert cache.get("cache/big", None) == changed

    def test_file_of_another_size_is_not_read(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Telling a big lastfailed from the new value costs no read of its megabytes."""
        path = tmp_path / "value"
        path.write_bytes(b"[]" * 50_000)
        read: list[int] = []
        real_open = Path.open

        class Counted:
            def __init__(self, f: Any) -> None:
                self.f = f

            def read(self, size: int = -1) -> bytes:
                data: bytes = self.f.read(size)
                read.append(len(data))
                return data

        @contextlib.contextmanager
        def counted_open(p: Path, *args: Any, **kwargs: Any) -> Iterator[Counted]:
            with real_open(p, *args, **kwargs) as f:
                yield Counted(f)

        monkeypatch.setattr(Path, "open", counted_open)
        assert not cacheprovider._content_is(path, b"[]" * 49_999)
        assert read == []
        assert cacheprovider._content_is(path, b"[]" * 50_000)
        assert read == [100_000]

    @staticmethod
    def steady_state_changes(pytester: Pytester) -> list[str]:
        """Files below the cache dir that a third session that changes nothing rewrote."""
        pytester.makepyfile(
            "import pytest\n"
            "@pytest.mark.parametrize('i', range(50))\n"
            "def test_ok(i):\n"
            "    pass\n"
        )
        for _ in range(2):
            pytester.runpytest_subprocess(
                "-p", "no:xdist", timeout=120
            ).assert_outcomes(passed=50)
        cachedir = pytester.path / ".pytest_cache"
        before = snapshot(cachedir)
        pytester.runpytest_subprocess("-p", "no:xdist", timeout=120).assert_outcomes(
            passed=50
        )
        after = snapshot(cachedir)
        return sorted(k for k in after if before.get(k) != after[k])

    @pytest.mark.layer("atomic-set")
    def test_steady_state_session_writes_no_value(self, pytester: Pytester) -> None:
        """Sessions that change nothing rewrote ``cache/nodeids`` and ``cache/stepwise`` each time."""
        rewritten = [
            k for k in self.steady_state_changes(pytester) if k.startswith("v")
        ]
        assert rewritten == [], (
            f"[atomic-set] a session that changed nothing rewrote {rewritten}"
        )

    def test_steady_state_session_leaves_the_cache_untouched(
        self, pytester: Pytester
    ) -> None:
        """Not even ``merge.lock``: nothing to merge takes no lock."""
        rewritten = self.steady_state_changes(pytester)
        assert rewritten == [], f"a session that changed nothing touched {rewritten}"
