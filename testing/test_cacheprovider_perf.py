"""The cheap atomic write and the skipped redundant writes (issue 12): behaviour, never timing.

Costs are measured by ``scripts/bench.py``; these tests only pin down what the
cheaper code must still do: write atomically, report failures, recreate a
directory removed behind its back, refuse escaping keys, and leave a file alone
when it already holds the value.
"""

from __future__ import annotations

import enum
import errno
import json
import os
from pathlib import Path
import shutil

from _pytest.cacheprovider import _confined_path
from _pytest.cacheprovider import _write_atomic
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
        real_write = os.write
        seen: list[str] = []

        def half_then_read(fd: int, data: bytes) -> int:
            if seen:  # The rest, after the short write.
                return real_write(fd, data)
            done = real_write(fd, bytes(data[: len(data) // 2]))
            seen.append(target.read_text())
            return done

        with monkeypatch.context() as m:
            m.setattr(os, "write", half_then_read)
            _write_atomic(target, '"new value"')
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
    def test_remembered_path_is_the_normalized_one(
        self, tmp_path: Path, name: str
    ) -> None:
        expected = Path(os.path.normpath(os.path.join(tmp_path, name)))
        assert _confined_path(tmp_path, name) == expected
        assert _confined_path(tmp_path, name) == expected  # From the memo.

    @pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd"])
    def test_escaping_name_is_refused_every_time(
        self, tmp_path: Path, name: str
    ) -> None:
        for _ in range(2):
            with pytest.raises(ValueError, match="not allowed to escape"):
                _confined_path(tmp_path, name)


class TestSkipEqualWrites:
    @pytest.mark.layer("skip-equal-writes")
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
            f"[skip-equal-writes] an unchanged value was written again: {before} -> {after}"
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

    @pytest.mark.layer("skip-equal-writes")
    def test_steady_state_session_writes_no_value(self, pytester: Pytester) -> None:
        """Sessions that change nothing rewrote ``cache/nodeids`` and ``cache/stepwise`` each time."""
        rewritten = [
            k for k in self.steady_state_changes(pytester) if k.startswith("v")
        ]
        assert rewritten == [], (
            f"[skip-equal-writes] a session that changed nothing rewrote {rewritten}"
        )

    @pytest.mark.layer("no-idle-lock")
    def test_steady_state_session_leaves_the_cache_untouched(
        self, pytester: Pytester
    ) -> None:
        """Not even ``merge.lock``: nothing to merge takes no lock."""
        rewritten = self.steady_state_changes(pytester)
        assert rewritten == [], (
            f"[no-idle-lock] a session that changed nothing touched {rewritten}"
        )


# A subclass of int and one of str: the exact-type fast paths must leave them alone.
_COLOR = enum.IntEnum("_COLOR", "RED")
_NAME = type("_NAME", (str,), {})


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


# Values a plugin may set, each written by json.dumps(indent=2) as upstream does.
JSON_VALUES = [
    0,
    -1.5,
    "é\n",
    None,
    True,
    [],
    {},
    [[], {}],
    {"answer": 42, "items": [1, 2, 3], "name": "bench"},
    {f"t.py::test_{i}": True for i in range(50)},
    {"t.py::a": True, "t.py::b": False},
    [f"t.py::test_{i}" for i in range(50)],
    ['quote"d', "back\\slash", "tab\t", "ünï", "\u2028"] * 4,
    {
        'q"': True,
        "x": True,
        "y": True,
        "z": True,
        "w": True,
        "v": True,
        "u": True,
        "t": True,
        "s": True,
    },
    [float("nan"), float("inf"), -float("inf"), 1e300, -0.0, 10**30] * 2,
    {3: "int key", None: "null key", True: "bool key", 2.5: "float key"},
    (1, ("a", (True,))),
    {"enum": [_COLOR.RED] * 9, "str subclass": [_NAME("x")] * 9},
    {
        _NAME("key"): True,
        "other": True,
        "a": True,
        "b": True,
        "c": True,
        "d": True,
        "e": True,
        "f": True,
        "g": True,
    },
    _nested(40),
    {"deep": {"er": {"est": [{"a": [1, {"b": None}]}]}}},
]


class TestFastJson:
    @pytest.mark.layer("fast-json")
    def test_values_are_json_dumps_text_without_its_python_loop(
        self, pytester: Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Value files hold exactly what ``json.dumps(indent=2)`` writes, and errors are its own.

        lastfailed, nodeids and small plugin values are written without
        ``json``'s pure-Python indenting loop.
        """
        cache = pytester.parseconfigure().cache
        assert cache is not None
        calls: list[object] = []
        real = json.encoder._make_iterencode  # type: ignore[attr-defined]

        def counting(*args: object, **kwargs: object) -> object:
            calls.append(args)
            return real(*args, **kwargs)

        with monkeypatch.context() as m:
            m.setattr(json.encoder, "_make_iterencode", counting)
            cache.set(
                "cache/lastfailed", {f"t.py::test_{i}": True for i in range(1000)}
            )
            cache.set("cache/nodeids", [f"t.py::test_{i}" for i in range(1000)])
            cache.set("plugin/value", {"answer": 42, "items": [1, 2, 3], "name": "x"})
        for i, value in enumerate(JSON_VALUES):
            cache.set(f"plugin/value{i}", value)
            written = cache._getvaluepath(f"plugin/value{i}").read_bytes()
            expected = json.dumps(value, ensure_ascii=False, indent=2)
            assert written == expected.encode(), f"value {i}: {value!r}"
        cycle: list[object] = []
        cycle.append(cycle)
        with pytest.raises(ValueError, match="Circular reference"):
            cache.set("plugin/value", cycle)
        with pytest.raises(TypeError, match="not JSON serializable"):
            cache.set("plugin/value", {"a": object()})
        with pytest.raises(TypeError, match="keys must be"):
            cache.set("plugin/value", {("a",): 1})
        assert calls == [], (
            f"[fast-json] the pure-Python indenting encoder ran {len(calls)} times"
        )
