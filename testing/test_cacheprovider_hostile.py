"""Hostile ground: other PID namespaces, odd names, huge caches, concurrent clears.

Each test puts the cache where stock pytest works and the fork once did not:
a session in another PID namespace sharing the checkout (real ``unshare``),
names and trees the sweep cannot parse or list, a ``v/`` holding more files
than the sweep looks at per session, a ``--cache-clear`` racing another
session's sweep or ``set``.  Interleavings are forced with file barriers: the
held process wraps ``os.rename``/``os.replace``/``open`` and waits for a file
the test creates; no sleeps decide anything.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

from race_harness import require
from race_harness import unavailable

from _pytest import cacheprovider
from _pytest.pytester import Pytester
from _pytest.pytester import RunResult
import pytest


RUN_TIMEOUT = 240.0
WAIT = 60.0
PREFIX = "pytest-cache-files-"
# The fork's age limit for private entries (the black-box tests also run on stock).
ORPHAN_TIMEOUT: float = getattr(cacheprovider, "ORPHAN_TIMEOUT", 3600.0)

# The held session's conftest: HOLD names the one call to hold, once, until the
# test creates the file "go".  "before-move:NAME" holds os.rename/os.replace onto
# NAME before it happens, "after-move:NAME" holds after moving NAME away,
# "open-in:A|B" holds an open for writing of a file in folder A or B,
# "after-mkdir:NAME" holds after creating a directory NAME.
HOLDING_CONFTEST = """
import io
import os
import pathlib
import time
from pathlib import Path

ROOT = Path(__file__).parent
HOLD = os.environ.get("HOLD", "")
_real = {
    "rename": os.rename,
    "replace": os.replace,
    "mkdir": os.mkdir,
    "io.open": io.open,
    "os.open": os.open,
}
_done = []


def _hold():
    if _done:
        return
    _done.append(True)
    with _real["io.open"](ROOT / "held.tmp", "w") as f:
        f.write(str(os.getpid()))
    _real["rename"](ROOT / "held.tmp", ROOT / "held")
    deadline = time.monotonic() + 60.0
    while not os.path.exists(ROOT / "go"):
        if time.monotonic() > deadline:
            _real["io.open"](ROOT / "timed-out", "w").close()
            return
        time.sleep(0.01)


def _moving(name):
    def move(src, dst, *args, **kwargs):
        if HOLD == "before-move:" + os.path.basename(os.fspath(dst)):
            _hold()
        try:
            result = _real[name](src, dst, *args, **kwargs)
        except OSError:
            if HOLD == "failed-move:" + os.path.basename(os.fspath(dst)):
                _hold()
            raise
        if HOLD == "after-move:" + os.path.basename(os.fspath(src)):
            _hold()
        return result
    return move


def _mkdir(path, *args, **kwargs):
    _real["mkdir"](path, *args, **kwargs)
    if HOLD == "after-mkdir:" + os.path.basename(os.fspath(path)):
        _hold()


def _writes_in(path, writing):
    folder = os.path.basename(os.path.dirname(os.fspath(path)))
    return writing and HOLD.startswith("open-in:") and folder in HOLD[8:].split("|")


def _io_open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, os.PathLike)) and _writes_in(file, set(mode) & set("wxa+")):
        _hold()
    return _real["io.open"](file, mode, *args, **kwargs)


def _os_open(path, flags, *args, **kwargs):
    if _writes_in(path, flags & (os.O_WRONLY | os.O_RDWR)):
        _hold()
    return _real["os.open"](path, flags, *args, **kwargs)


if HOLD:
    os.rename = _moving("rename")
    os.replace = _moving("replace")
    os.mkdir = _mkdir
    # Python < 3.11: Path methods call os functions bound at import.
    _accessor = getattr(pathlib, "_normal_accessor", None)
    if _accessor is not None:
        _accessor.rename = os.rename
        _accessor.replace = os.replace
        _accessor.mkdir = os.mkdir
    io.open = _io_open
    os.open = _os_open
    if getattr(_accessor, "open", None) is _real["io.open"]:  # Python 3.10's Path.open.
        _accessor.open = _io_open
"""


def require_root_linux_tool(tool: str, probe: list[str]) -> None:
    """Skip unless we are root on Linux with ``tool`` working; CI must run, not skip."""
    reason = ""
    if sys.platform != "linux":
        reason = "needs Linux"
    elif os.geteuid() != 0:
        reason = "needs root"
    elif shutil.which(tool) is None:
        reason = f"needs {tool}"
    else:
        try:
            done = subprocess.run(probe, check=False, capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            reason = f"{tool} did not answer within 30 s"
        else:
            if done.returncode != 0:
                reason = (
                    f"{' '.join(probe)} failed: {done.stderr.decode(errors='replace')}"
                )
    if not reason:
        return
    unavailable(reason)


def dead_pid() -> int:
    """A pid that ran a moment ago and runs no more (pids are handed out in increasing order)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=RUN_TIMEOUT)
    return process.pid


def pid_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def own_private_name(directory: Path, pid: int) -> Path:
    """A private name as this build makes them in ``directory``, with ``pid`` in it."""
    if not hasattr(cacheprovider, "_private_leaf"):  # Stock: the fork's old format.
        return directory / f"{PREFIX}{pid}-0a1b2c3d"
    name: str = cacheprovider._private_leaf()
    return directory / name.replace(f"-{os.getpid()}-", f"-{pid}-", 1)


def swept(entry: Path) -> bool:
    """Whether the sweep of a cache dir beside ``entry`` removes it."""
    cacheprovider._sweep_orphans(entry.parent / ".pytest_cache")
    return not os.path.lexists(entry)


def private_entries(root: Path) -> list[Path]:
    return sorted(root.rglob(PREFIX + "*"))


def output_of(result: RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:xdist", *args]


def wait_until_held(root: Path, process: subprocess.Popen[str]) -> int:
    """Wait (bounded) until the held session announces itself; return its pid."""
    deadline = time.monotonic() + WAIT
    held = root / "held"
    while not held.exists():
        if process.poll() is not None:
            out = process.communicate()[0]
            require(False, f"the held session ended before being held:\n{out}")
        require(time.monotonic() < deadline, "the held session was never held")
        time.sleep(0.01)
    return int(held.read_text())


def release(root: Path, process: subprocess.Popen[str]) -> tuple[int, str]:
    (root / "go").touch()
    out, _ = process.communicate(timeout=RUN_TIMEOUT)
    require(not (root / "timed-out").exists(), "the held session was released too late")
    return process.returncode, out


def run_other_session(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pytest_command(*args),
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def value_of(root: Path, key: str) -> object:
    path = root / ".pytest_cache" / "v" / key
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"<unreadable: {e}>"


def damage_in(output: str) -> list[str]:
    return [
        needle
        for needle in ("PytestCacheWarning", "INTERNALERROR", "Traceback", "Errno")
        if needle in output
    ]


class TestNamespaceOwnership:
    @pytest.mark.slow
    @pytest.mark.parametrize(
        "hold",
        [
            pytest.param("before-move:.pytest_cache", id="publishing-cache-dir"),
            pytest.param("before-move:value", id="writing-value"),
        ],
    )
    def test_sweep_spares_live_entry_of_another_pid_namespace(
        self, pytester: Pytester, hold: str
    ) -> None:
        """A session in another PID namespace (devcontainer and host) keeps its private entry.

        Session A runs in a new PID namespace with a pid that does not run in
        ours, and is held while its private entry (the cache dir being
        published, or a value being written) exists.  Session B, here,
        finishes and sweeps.  A's entry and its write must survive.
        """
        require_root_linux_tool(
            "unshare", ["unshare", "--pid", "--fork", "--mount-proc", "true"]
        )
        root = pytester.path
        pytester.makeconftest(HOLDING_CONFTEST)
        pytester.makepyfile(
            test_a='def test_a(cache): cache.set("ns/value", 1)',
            test_b='def test_b(cache): cache.set("b/value", 2)',
        )
        if hold == "before-move:value":
            created = run_other_session(root, "test_b.py")
            require(created.returncode == 0, f"no cache dir:\n{created.stdout}")
        # Inside the new namespace the next pid is one that ran here and is gone.
        next_pid = dead_pid()
        script = (
            'echo "$1" > /proc/sys/kernel/ns_last_pid'
            ' && "$2" -m pytest -p no:xdist test_a.py; exit $?'
        )
        a = subprocess.Popen(
            [
                *("unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script),
                *("sh", str(next_pid - 1), sys.executable),
            ],
            cwd=root,
            env={**os.environ, "HOLD": hold},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            a_pid = wait_until_held(root, a)
            require(not pid_runs(a_pid), f"A's pid {a_pid} runs here too")
            held_entries = private_entries(root)  # B has not run: all are A's.
            require(held_entries, "A holds no private entry")
            b = run_other_session(root, "test_b.py")
            swept = [p for p in held_entries if not os.path.lexists(p)]
        finally:
            rc, out = release(root, a)

        require(b.returncode == 0, f"session B failed:\n{b.stdout}{b.stderr}")
        assert swept == [], (
            f"session B swept {swept}, the live private "
            f"entry of session A in another PID namespace"
        )
        assert damage_in(out) == [] and rc == 0, (
            f"session A (rc {rc}) lost its write:\n{out}"
        )
        assert value_of(root, "ns/value") == 1, (
            f"A's value is {value_of(root, 'ns/value')!r}"
        )

    @pytest.mark.parametrize(
        "name",
        [
            pytest.param(PREFIX + "99999999999999999999-x", id="huge-pid"),
            pytest.param(PREFIX + "\u00b2-x", id="superscript-digit"),
            pytest.param("own-format-huge-pid", id="own-format-huge-pid"),
        ],
    )
    def test_malformed_private_name_does_not_crash_the_session_end(
        self, pytester: Pytester, name: str
    ) -> None:
        """A name the sweep cannot trust is judged by age only, never parsed into a crash."""
        if name == "own-format-huge-pid":
            entry = own_private_name(pytester.path, 10**20)
        else:
            entry = pytester.path / name
        entry.mkdir()
        pytester.makeini("[pytest]\nfilterwarnings = error\n")
        pytester.makepyfile("def test(): pass")

        result = pytester.runpytest_subprocess("-p", "no:xdist", timeout=RUN_TIMEOUT)

        text = output_of(result)
        assert result.ret == 0 and damage_in(text) == [], (
            f"the name {entry.name!r} crashed the session end "
            f"(rc {result.ret}):\n{text}"
        )
        assert entry.is_dir()  # Young: its age decides, later.

    @pytest.mark.parametrize(
        "name",
        [
            pytest.param(PREFIX + "{dead}-0a1b2c3d", id="no-owner-id"),
            pytest.param(PREFIX + "abcdefghij-{dead}-0a1b2c3d", id="other-namespace"),
            pytest.param(PREFIX + "x-{dead}-0a1b2c3d", id="unknown-owner"),
        ],
    )
    def test_dead_pid_of_unproven_owner_is_judged_by_age(
        self, tmp_path: Path, name: str
    ) -> None:
        """A pid proves death only inside our own namespace: otherwise age decides."""
        entry = tmp_path / name.format(dead=dead_pid())
        entry.mkdir()
        assert not swept(entry), (
            f"{entry.name}, young, of a pid dead here but of no proven owner, "
            f"was swept as an orphan"
        )
        old = time.time() - 2 * ORPHAN_TIMEOUT
        os.utime(entry, (old, old))
        assert swept(entry)

    def test_own_dead_entry_is_an_orphan_at_once(self, tmp_path: Path) -> None:
        entry = own_private_name(tmp_path, dead_pid())
        entry.mkdir()
        assert swept(entry)

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_private_name_follows_fork(self, tmp_path: Path) -> None:
        """The cached start of the name is recomputed in a forked child (its pid differs)."""
        code = """if True:
            import os, sys
            from _pytest.cacheprovider import _private_leaf
            parent = _private_leaf()
            pid = os.fork()
            if pid == 0:
                print(_private_leaf(), flush=True)
                os._exit(0)
            os.waitpid(pid, 0)
            print(parent, pid, os.getpid())
        """
        done = subprocess.run(
            [sys.executable, "-c", code],
            check=False,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
        child_name, line = done.stdout.splitlines()
        parent_name, child, parent = line.split()
        assert f"-{parent}-" in parent_name
        assert f"-{child}-" in child_name and f"-{parent}-" not in child_name

    @pytest.mark.parametrize("mount_proc", [True, False], ids=["own-proc", "host-proc"])
    def test_owner_id_differs_per_pid_namespace(self, mount_proc: bool) -> None:
        """Another namespace gets another id; one whose /proc is not its own gets none."""
        probe = ["unshare", "--pid", "--fork", "--mount-proc", "true"]
        require_root_linux_tool("unshare", probe)
        code = "from _pytest import cacheprovider as c; print(c._owner_id())"
        command = ["unshare", "--pid", "--fork"]
        if mount_proc:
            command.append("--mount-proc")
        done = subprocess.run(
            [*command, sys.executable, "-c", code],
            check=False,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
        require(done.returncode == 0, f"probe failed: {done.stderr}")
        theirs = done.stdout.strip()
        ours = cacheprovider._owner_id()
        assert ours != cacheprovider._NO_OWNER_ID
        if mount_proc:
            assert theirs not in (ours, cacheprovider._NO_OWNER_ID)
        else:
            assert theirs == cacheprovider._NO_OWNER_ID


class TestBestEffortSweep:
    @pytest.mark.parametrize(
        "error", [errno.EIO, errno.ELOOP, errno.EOVERFLOW], ids=errno.errorcode.get
    )
    def test_entry_the_sweep_cannot_judge_is_left_for_later(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
    ) -> None:
        """``stat`` of a private entry fails with an errno no allow-list foresaw."""
        cachedir = tmp_path / ".pytest_cache"
        (cachedir / "v").mkdir(parents=True)
        entry = own_private_name(tmp_path, dead_pid())
        entry.mkdir()

        judged: list[str] = []

        def cannot_judge(name: str) -> bool:
            judged.append(name)
            raise OSError(error, os.strerror(error), name)

        monkeypatch.setattr(cacheprovider, "_own_dead_pid", cannot_judge)
        raised = None
        try:
            cacheprovider._sweep_orphans(cachedir)
        except OSError as e:
            raised = e
        require(judged, "the sweep never judged the entry")
        assert raised is None, f"the sweep raised {raised!r}"
        assert entry.is_dir()

    def test_unlistable_folder_below_v_does_not_fail_the_session_end(
        self, pytester: Pytester
    ) -> None:
        """A ``v/`` tree deeper than PATH_MAX (ENAMETOOLONG): stock never looks, nor may we fail."""
        folder = pytester.path / ".pytest_cache" / "v" / "deep"
        folder.mkdir(parents=True)
        fd = os.open(folder, os.O_RDONLY)
        try:
            for _ in range(40):  # 40 x 200 characters: twice PATH_MAX on Linux.
                os.mkdir("d" * 200, dir_fd=fd)
                deeper = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
                os.close(fd)
                fd = deeper
        finally:
            os.close(fd)
        pytester.makeini("[pytest]\nfilterwarnings = error\n")
        pytester.makepyfile("def test(): pass")

        result = pytester.runpytest_subprocess("-p", "no:xdist", timeout=RUN_TIMEOUT)

        text = output_of(result)
        assert result.ret == 0 and "Traceback" not in text, (
            f"a folder the sweep cannot list failed the "
            f"session end (rc {result.ret}):\n{text}"
        )


class TestLiveClaims:
    @pytest.mark.slow
    def test_cache_clear_claim_is_not_taken_by_a_concurrent_sweep(
        self, pytester: Pytester
    ) -> None:
        """Session A's ``--cache-clear`` has claimed an hour-old ``v/`` when B's sweep runs.

        The claim must look live to B (young, owned by a running process),
        so that B leaves it to A, and A's clear finishes cleanly.
        """
        root = pytester.path
        pytester.makeconftest(HOLDING_CONFTEST)
        pytester.makepyfile(
            test_a="def test_a(): pass",
            test_b='def test_b(cache): cache.set("b/value", 2)',
        )
        created = run_other_session(root, "test_b.py")
        require(created.returncode == 0, f"no cache dir:\n{created.stdout}")
        values = root / ".pytest_cache" / "v"
        old = time.time() - 2 * ORPHAN_TIMEOUT
        os.utime(values, (old, old))

        a = subprocess.Popen(
            pytest_command("--cache-clear", "test_a.py"),
            cwd=root,
            env={**os.environ, "HOLD": "after-move:v"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until_held(root, a)
            claims = private_entries(root / ".pytest_cache")
            require(claims, "A holds no claim")
            b = run_other_session(root, "test_b.py")
            taken = [p for p in claims if not os.path.lexists(p)]
        finally:
            rc, out = release(root, a)

        require(b.returncode == 0, f"session B failed:\n{b.stdout}{b.stderr}")
        assert taken == [], (
            f"session B's sweep took {taken}, A's live --cache-clear claim"
        )
        assert rc == 0 and damage_in(out) == [], (
            f"A's --cache-clear failed (rc {rc}):\n{out}"
        )
        assert private_entries(root) == []


class TestCacheShow:
    def test_cache_show_lists_no_private_entries(self, pytester: Pytester) -> None:
        """A killed writer's private file (in the cache dir, where set() writes it) is not a key."""
        pytester.makepyfile('def test(cache): cache.set("plugin/key", [1, 2])')
        pytester.runpytest_subprocess("-p", "no:xdist", timeout=RUN_TIMEOUT)
        left = own_private_name(pytester.path / ".pytest_cache", 1)
        left.write_text('{"half": ')

        result = pytester.runpytest_subprocess(
            "-p", "no:xdist", "--cache-show", timeout=RUN_TIMEOUT
        )

        result.stdout.fnmatch_lines(["plugin/key contains:", "  [1, 2]"])
        listed = [line for line in result.outlines if PREFIX in line]
        assert listed == [], f"--cache-show lists {listed}"
        assert result.ret == 0


class TestVanishingFolder:
    @pytest.mark.slow
    @pytest.mark.layer("atomic-set")
    def test_set_whose_folder_a_concurrent_clear_removed_still_writes(
        self, pytester: Pytester
    ) -> None:
        """A's ``set`` is under way when B's ``--cache-clear`` takes ``v/``.

        The value must be written anyway (as if ``set`` came after the
        clear), without a warning.  A is held where it opens its value's file:
        stock in ``v/plugin``, which it made just before; this build in the
        cache dir (its private file), and it makes ``v/plugin`` when the
        replace finds the folder missing.
        """
        root = pytester.path
        pytester.makeconftest(HOLDING_CONFTEST)
        pytester.makepyfile(
            test_a='def test_a(cache): cache.set("plugin/value", 1)',
            test_b="def test_b(): pass",
        )
        created = run_other_session(root, "test_b.py")
        require(created.returncode == 0, f"no cache dir:\n{created.stdout}")
        a = subprocess.Popen(
            pytest_command("test_a.py"),
            cwd=root,
            env={**os.environ, "HOLD": "open-in:plugin|.pytest_cache"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until_held(root, a)
            b = run_other_session(root, "--cache-clear", "test_b.py")
            require(
                not (root / ".pytest_cache" / "v" / "plugin").exists(),
                "B's --cache-clear did not remove v/plugin",
            )
        finally:
            rc, out = release(root, a)

        require(b.returncode == 0, f"session B failed:\n{b.stdout}{b.stderr}")
        assert rc == 0 and damage_in(out) == [], (
            f"[atomic-set] A's set failed after a concurrent clear (rc {rc}):\n{out}"
        )
        assert value_of(root, "plugin/value") == 1, (
            f"[atomic-set] A's value is {value_of(root, 'plugin/value')!r}"
        )

    @pytest.mark.slow
    def test_first_values_of_a_new_folder_written_at_once_both_land(
        self, pytester: Pytester
    ) -> None:
        """A and B set the first values of ``v/plugin/`` at once (two xdist workers).

        A's replace fails because ``v/plugin`` is missing; before A looks why,
        B's ``set`` makes the folder.  A must write its value anyway, without a
        warning, as stock does (it makes the folder before every write).
        """
        root = pytester.path
        pytester.makeconftest(HOLDING_CONFTEST)
        pytester.makepyfile(
            test_a='def test_a(cache): cache.set("plugin/value", 1)',
            test_b='def test_b(cache): cache.set("plugin/other", 2)',
            test_c="def test_c(): pass",
        )
        created = run_other_session(root, "test_c.py")
        require(created.returncode == 0, f"no cache dir:\n{created.stdout}")
        a = subprocess.Popen(
            pytest_command("test_a.py"),
            cwd=root,
            env={**os.environ, "HOLD": "failed-move:value"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until_held(root, a)
            b = run_other_session(root, "test_b.py")
        finally:
            rc, out = release(root, a)

        require(b.returncode == 0, f"session B failed:\n{b.stdout}{b.stderr}")
        require(value_of(root, "plugin/other") == 2, "B did not make v/plugin")
        assert rc == 0 and damage_in(out) == [], (
            f"A's set failed while B made its folder (rc {rc}):\n{out}"
        )
        assert value_of(root, "plugin/value") == 1, (
            f"A's value is {value_of(root, 'plugin/value')!r}"
        )
