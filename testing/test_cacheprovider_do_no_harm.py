"""Do no harm: where stock pytest keeps a property of the cache, this build keeps it too.

Each test puts the cache on ground where stock 8.2.0 and 9.2.0 behave and the
fork at acfae61 did harm (issue 19): value files of another mode, owner or
group, a symlinked value, a full filesystem, keys stock accepts, an overlayfs
lower layer, remote xdist workers, a concurrent ``--cache-clear``, a test file
whose name is not UTF-8.  The ground is real: uids from ``useradd``, processes
without capabilities (``setpriv``), umasks, setgid folders, tmpfs and overlayfs
mounts, ``--tx popen//chdir`` workers.  Tests that need root on Linux skip
elsewhere (and fail on CI, which must run them).
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import errno
import grp
import json
import os
from pathlib import Path
import pwd
import shutil
import stat
import subprocess
import sys

from race_harness import require
from race_harness import unavailable
from test_cacheprovider_hostile import HOLDING_CONFTEST
from test_cacheprovider_hostile import release
from test_cacheprovider_hostile import wait_until_held

from _pytest.pytester import Pytester
import pytest


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from envs import DROP_DAC


RUN_TIMEOUT = 240.0
PREFIX = "pytest-cache-files-"
# A user of the machine who owns the checkout (a bind mount, a team folder).
OTHER_USER = "pytest-do-no-harm"
# The same length, so that the new lastfailed is exactly as long as the old one.
FAILS_A = "def test_a(): assert 0\ndef test_b(): pass\n"
FAILS_B = "def test_a(): pass\ndef test_b(): assert 0\n"


def require_root_linux() -> None:
    if sys.platform != "linux":
        unavailable("needs Linux")
    if os.geteuid() != 0:
        unavailable("needs root")


def other_user() -> tuple[int, int]:
    """The uid and gid of :data:`OTHER_USER`, made with ``useradd`` if the machine lacks it."""
    require_root_linux()
    for _ in range(2):  # A concurrent test may have added it meanwhile.
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(OTHER_USER)
            return entry.pw_uid, entry.pw_gid
        if shutil.which("useradd") is None:
            unavailable("needs useradd")
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", OTHER_USER],
            check=False,
            capture_output=True,
            timeout=60,
        )
    entry = pwd.getpwnam(OTHER_USER)
    return entry.pw_uid, entry.pw_gid


def pytest_run(
    cwd: Path,
    *args: str,
    prefix: tuple[str, ...] = (),
    umask: int | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a plain pytest session (no xdist) in ``cwd``, under ``umask`` if given."""
    command = [*prefix, sys.executable, "-m", "pytest", "-p", "no:xdist", *args]
    if umask is not None:
        command = ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *command]
    return subprocess.run(
        command,
        cwd=cwd,
        # No bytecode: a test file rewritten within the second the previous run
        # cached it (same size) would otherwise run its old code.
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        capture_output=True,
        text=True,
        errors="replace",  # Node ids with bytes that are not UTF-8.
        timeout=RUN_TIMEOUT,
        check=False,
    )


def output(done: subprocess.CompletedProcess[str]) -> str:
    return f"(rc {done.returncode})\n{done.stdout}{done.stderr}"


def lastfailed(project: Path) -> object:
    path = project / ".pytest_cache" / "v" / "cache" / "lastfailed"
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        return f"<unreadable: {e}>"


def left_over(*roots: Path) -> list[Path]:
    """Private entries in and beside the cache dirs of ``roots``."""
    found: list[Path] = []
    for root in roots:
        for folder in (root, root / ".pytest_cache"):
            if folder.is_dir():
                found += sorted(folder.glob(PREFIX + "*"))
    return found


def project_with_lastfailed(pytester: Pytester) -> Path:
    """A project whose lastfailed holds ``test_x.py::test_a``; test_b fails next time."""
    project = pytester.mkdir("project")
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_x.py").write_text(FAILS_A)
    done = pytest_run(project)
    require(done.returncode == 1, f"first run:\n{output(done)}")
    (project / "test_x.py").write_text(FAILS_B)
    return project


class TestValueFileKeepsItsProperties:
    def test_rewrite_keeps_the_mode_of_a_secret(self, pytester: Pytester) -> None:
        """A plugin's 0600 token stays 0600 when rewritten under umask 022."""
        pytester.makeini("[pytest]\n")
        pytester.makepyfile(
            "import os\n"
            "def test_store(cache):\n"
            '    cache.set("plugin/token", os.environ["TOKEN"])\n'
        )
        token = pytester.path / ".pytest_cache" / "v" / "plugin" / "token"
        first = pytest_run(pytester.path, env={"TOKEN": "first"})
        require(first.returncode == 0, f"first run:\n{output(first)}")
        token.chmod(0o600)
        done = pytest_run(pytester.path, umask=0o022, env={"TOKEN": "second"})
        assert done.returncode == 0, output(done)
        assert json.loads(token.read_text()) == "second"
        mode = stat.S_IMODE(token.stat().st_mode)
        assert mode == 0o600, f"the token's mode became {mode:04o}"

    def test_root_rewriting_a_users_checkout_keeps_its_owner(
        self, pytester: Pytester
    ) -> None:
        """``docker run`` as root on a bind mount owned by a user: lastfailed stays theirs."""
        uid, gid = other_user()
        project = project_with_lastfailed(pytester)
        for path in [project, *project.rglob("*")]:
            os.chown(path, uid, gid, follow_symlinks=False)

        done = pytest_run(project)

        assert done.returncode == 1, output(done)
        assert lastfailed(project) == {"test_x.py::test_b": True}
        st = (project / ".pytest_cache" / "v" / "cache" / "lastfailed").stat()
        assert (st.st_uid, st.st_gid) == (uid, gid), (
            f"lastfailed changed hands to {st.st_uid}:{st.st_gid}"
        )

    def test_group_member_keeps_the_team_caches_group_and_mode(
        self, pytester: Pytester
    ) -> None:
        """A team cache in a setgid group folder, rewritten by a member with umask 022.

        The member has no capabilities (it cannot give a file away): the file
        stays 0664, the group's, owned by whoever owned it.
        """
        uid, gid = other_user()
        if shutil.which("setpriv") is None:
            unavailable("needs setpriv (util-linux)")
        project = project_with_lastfailed(pytester)
        for path in [project, *project.rglob("*")]:
            os.chown(path, uid, gid)
            path.chmod(0o2775 if path.is_dir() else 0o664)
        member = (
            "setpriv",
            f"--groups={gid}",
            "--inh-caps=-all",
            "--bounding-set=-all",
        )

        done = pytest_run(project, prefix=member, umask=0o022)

        assert done.returncode == 1, output(done)
        assert lastfailed(project) == {"test_x.py::test_b": True}
        st = (project / ".pytest_cache" / "v" / "cache" / "lastfailed").stat()
        got = (stat.S_IMODE(st.st_mode), st.st_uid, grp.getgrgid(st.st_gid).gr_name)
        assert got == (0o664, uid, grp.getgrgid(gid).gr_name), (
            f"lastfailed became {got[0]:04o} {got[1]}:{got[2]}"
        )

    def test_writable_value_in_a_folder_that_takes_no_new_file_is_rewritten(
        self, pytester: Pytester
    ) -> None:
        """``v/cache`` is 0555, ``lastfailed`` 0666: stock rewrites it in place; so must we.

        Without the DAC capabilities root is held to the modes, as a user is.
        """
        require_root_linux()
        if shutil.which("setpriv") is None:
            unavailable("needs setpriv (util-linux)")
        project = project_with_lastfailed(pytester)
        folder = project / ".pytest_cache" / "v" / "cache"
        for value in folder.iterdir():
            value.chmod(0o666)
        folder.chmod(0o555)
        try:
            done = pytest_run(project, prefix=DROP_DAC)
        finally:
            folder.chmod(0o755)

        assert done.returncode == 1, output(done)
        assert "PytestCacheWarning" not in done.stdout + done.stderr, output(done)
        assert lastfailed(project) == {"test_x.py::test_b": True}
        assert left_over(project) == []

    def test_new_value_in_a_cache_dir_that_takes_no_new_file_is_written(
        self, pytester: Pytester
    ) -> None:
        """The cache dir is 0555, ``v/plugin`` writable: stock creates the value there; so must we."""
        require_root_linux()
        if shutil.which("setpriv") is None:
            unavailable("needs setpriv (util-linux)")
        pytester.makeini("[pytest]\n")
        pytester.makepyfile(
            "def test_sets(cache):\n"
            '    cache.set("plugin/number", 2)\n'
            '    cache.set("plugin/object", {"n": 2})\n'
            '    cache.set("plugin/old", 2)\n'
        )
        cachedir = pytester.path / ".pytest_cache"
        folder = cachedir / "v" / "plugin"
        folder.mkdir(parents=True)
        (folder / "old").write_text("1")
        for name in ("README.md", ".gitignore", "CACHEDIR.TAG"):
            (cachedir / name).write_text("")
        cachedir.chmod(0o555)
        try:
            done = pytest_run(pytester.path, prefix=DROP_DAC)
        finally:
            cachedir.chmod(0o755)

        assert done.returncode == 0, output(done)
        assert "PytestCacheWarning" not in done.stdout + done.stderr, output(done)
        values = {p.name: json.loads(p.read_text()) for p in folder.iterdir()}
        assert values == {"number": 2, "object": {"n": 2}, "old": 2}

    def test_symlinked_value_is_written_through(self, pytester: Pytester) -> None:
        """``v/cache/lastfailed`` links to a shared file: the file gets the new value."""
        project = project_with_lastfailed(pytester)
        value = project / ".pytest_cache" / "v" / "cache" / "lastfailed"
        shared = pytester.path / "shared-lastfailed"
        value.rename(shared)
        value.symlink_to(shared)

        done = pytest_run(project)

        assert done.returncode == 1, output(done)
        assert value.is_symlink(), "the link was replaced by a regular file"
        assert json.loads(shared.read_text()) == {"test_x.py::test_b": True}


@contextlib.contextmanager
def mounted(kind: str, target: Path, options: str) -> Iterator[Path]:
    """``mount -t kind -o options`` at ``target``, unmounted however the test ends."""
    require_root_linux()
    target.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", kind, "-o", options, kind, str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"cannot mount {kind} ({options}): {done.stderr}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True, timeout=60)


def fill(folder: Path, what: str) -> None:
    """Use up the free inodes (empty files) or blocks (one growing file) of ``folder``'s fs."""
    try:
        if what == "inodes":
            for i in range(1_000_000):
                (folder / f"filler{i}").touch()
        else:
            with (folder / "filler").open("wb") as f:
                for _ in range(1_000_000):
                    f.write(b"\0" * 4096)
                    f.flush()
    except OSError as e:
        require(e.errno == errno.ENOSPC, f"filling failed with {e}")
        return
    require(False, f"{folder} never filled up")


class TestFullDisk:
    @pytest.mark.parametrize("what", ["inodes", "blocks"])
    def test_full_filesystem_still_records_the_new_failure(
        self, pytester: Pytester, what: str
    ) -> None:
        """A full tmpfs: stock rewrites a same-size lastfailed in place, silently; so must we."""
        options = "size=4m,nr_inodes=400"
        with mounted("tmpfs", pytester.path / "disk", options) as disk:
            project = disk / "project"
            project.mkdir()
            (project / "pytest.ini").write_text("[pytest]\n")
            (project / "test_x.py").write_text(FAILS_A)
            done = pytest_run(project)
            require(done.returncode == 1, f"first run:\n{output(done)}")
            (project / "test_x.py").write_text(FAILS_B)
            fill(disk, what)

            done = pytest_run(project)

            assert done.returncode == 1, output(done)
            assert "PytestCacheWarning" not in done.stdout + done.stderr, output(done)
            assert lastfailed(project) == {"test_x.py::test_b": True}, (
                f"--lf would rerun the old failure: {output(done)}"
            )
            assert left_over(project) == []


class TestValueFolderOnAnotherFilesystem:
    def test_values_in_a_folder_linked_to_a_tmpfs_are_written(
        self, pytester: Pytester
    ) -> None:
        """``v/plugin`` links to a tmpfs (a RAM disk): stock writes there; so must we.

        A private file made in the cache dir cannot be renamed onto another
        filesystem (EXDEV).
        """
        with mounted("tmpfs", pytester.path / "disk", "size=4m") as disk:
            project = pytester.mkdir("project")
            (project / "pytest.ini").write_text("[pytest]\n")
            (project / "test_x.py").write_text(
                "def test_sets(cache):\n"
                "    for n in (1, 2):\n"
                '        cache.set("plugin/number", n)\n'
                '        cache.set("plugin/object", {"n": n})\n'
            )
            folder = project / ".pytest_cache" / "v" / "plugin"
            folder.parent.mkdir(parents=True)
            folder.symlink_to(disk)

            done = pytest_run(project)

            assert done.returncode == 0, output(done)
            assert "PytestCacheWarning" not in done.stdout + done.stderr, output(done)
            assert json.loads((disk / "number").read_text()) == 2
            assert json.loads((disk / "object").read_text()) == {"n": 2}
            assert sorted(p.name for p in disk.iterdir()) == ["number", "object"]
            assert left_over(project) == []


class TestKeysStockAccepts:
    def test_trailing_slash_and_path_keys_work_as_on_stock(
        self, pytester: Pytester
    ) -> None:
        pytester.makeini("[pytest]\nfilterwarnings = error\n")
        pytester.makepyfile(
            """
            from pathlib import Path

            def test_keys(cache):
                cache.set("plug/", 1)
                assert cache.get("plug/", None) == 1
                assert cache.get("plug", None) == 1
                cache.set(Path("plugin") / "key", [2])
                assert cache.get(Path("plugin") / "key", None) == [2]
                assert cache.get("plugin/key", None) == [2]
                made = cache.mkdir(Path("folder"))
                assert made == cache._cachedir / "d" / "folder" and made.is_dir()
            """
        )
        result = pytester.runpytest_subprocess("-p", "no:xdist", timeout=RUN_TIMEOUT)
        result.assert_outcomes(passed=1)
        values = pytester.path / ".pytest_cache" / "v"
        assert json.loads((values / "plug").read_text()) == 1
        assert json.loads((values / "plugin" / "key").read_text()) == [2]


def stale_cache(root: Path) -> None:
    """A cache holding a value and a plugin's directory that ``--cache-clear`` must remove."""
    (root / ".pytest_cache" / "v" / "plugin").mkdir(parents=True)
    (root / ".pytest_cache" / "v" / "plugin" / "value").write_text('"stale"')
    (root / ".pytest_cache" / "d" / "plugin").mkdir(parents=True)


# Every test checks that its worker's cache was cleared and marks it as seen.
CLEARED_TESTS = """
import pytest

@pytest.mark.parametrize("i", range(8))
def test_cache_was_cleared(cache, worker_id, i):
    assert cache.get("plugin/value", None) is None
    assert not (cache._cachedir / "d" / "plugin").exists()
    cache.set("seen/" + worker_id, True)
"""


class TestCacheClearEverywhere:
    def test_cache_clear_on_an_overlayfs_lower_layer(self, pytester: Pytester) -> None:
        """``.pytest_cache`` baked into a container image: renaming it away fails (EXDEV)."""
        pytest.importorskip("xdist")
        lower = pytester.mkdir("lower")
        (lower / "pytest.ini").write_text("[pytest]\n")
        (lower / "test_x.py").write_text(CLEARED_TESTS)
        stale_cache(lower)
        for name in ("upper", "work"):
            pytester.mkdir(name)
        options = (
            f"lowerdir={lower},upperdir={pytester.path / 'upper'},"
            f"workdir={pytester.path / 'work'},redirect_dir=off"
        )
        with mounted("overlay", pytester.path / "merged", options) as merged:
            env = {
                k: v
                for k, v in os.environ.items()
                if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
            }
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "xdist",
                    "-n",
                    "2",
                    "--cache-clear",
                ],
                cwd=merged,
                env=env,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                check=False,
            )
            seen = sorted(os.listdir(merged / ".pytest_cache" / "v" / "seen"))
            leftovers = left_over(merged)
        assert done.returncode == 0, output(done)
        assert len(seen) == 2, f"workers that touched the cache: {seen}"
        assert leftovers == []

    def test_remote_workers_clear_their_own_caches(self, pytester: Pytester) -> None:
        """``--tx popen//chdir=DIR`` workers (as over ssh) each have a cache of their own."""
        pytest.importorskip("xdist")
        roots = [pytester.mkdir(name) for name in ("controller", "w1", "w2")]
        for root in roots:
            (root / "pytest.ini").write_text("[pytest]\n")
            (root / "test_x.py").write_text(CLEARED_TESTS)
            stale_cache(root)
        env = {
            k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
        }
        done = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-p", "xdist", "--dist=load"),
                *(f"--tx=popen//chdir={root}" for root in roots[1:]),
                "--cache-clear",
            ],
            cwd=roots[0],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, output(done)
        seen = [
            sorted(os.listdir(root / ".pytest_cache" / "v" / "seen"))
            for root in roots[1:]
        ]
        assert seen == [["gw0"], ["gw1"]], f"workers that touched each cache: {seen}"
        assert left_over(*roots, pytester.path) == []


class TestConcurrentClear:
    @pytest.mark.slow
    @pytest.mark.layer("cache-clear")
    def test_mkdir_while_another_session_clears(self, pytester: Pytester) -> None:
        """Session A made ``d/`` for ``cache.mkdir("plugin")``; B's ``--cache-clear`` takes it.

        A must get its folder, as if ``mkdir`` came after the clear.
        """
        root = pytester.path
        pytester.makeconftest(HOLDING_CONFTEST)
        pytester.makepyfile(
            test_a='def test_a(cache): assert cache.mkdir("plugin").is_dir()',
            test_b="def test_b(): pass",
        )
        created = pytest_run(root, "test_b.py")
        require(created.returncode == 0, f"no cache dir:\n{output(created)}")
        a = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:xdist", "test_a.py"],
            cwd=root,
            env={**os.environ, "HOLD": "after-mkdir:d"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until_held(root, a)
            b = pytest_run(root, "--cache-clear", "test_b.py")
            require(
                not (root / ".pytest_cache" / "d").exists(),
                f"B's --cache-clear did not remove d/:\n{output(b)}",
            )
        finally:
            rc, out = release(root, a)
        assert rc == 0, f"[cache-clear] A's cache.mkdir failed after a clear:\n{out}"
        assert (root / ".pytest_cache" / "d" / "plugin").is_dir()


class TestNamesThatAreNotUtf8:
    @pytest.mark.layer("atomic-set")
    def test_failure_in_a_file_named_in_latin1_is_recorded(
        self, pytester: Pytester
    ) -> None:
        """A file named ``test_caf`` + byte 0xE9: its node id holds a lone surrogate, which UTF-8 cannot encode."""
        if sys.platform == "win32" or sys.getfilesystemencoding() != "utf-8":
            unavailable("needs a POSIX filesystem with UTF-8 file names")
        name = os.fsdecode(b"test_caf\xe9.py")
        (pytester.path / name).write_text("def test_fails(): assert 0\n")
        pytester.makepyfile(test_other="def test_passes(): pass")
        pytester.makeini("[pytest]\n")

        first = pytest_run(pytester.path)
        recorded = lastfailed(pytester.path)
        rerun = pytest_run(pytester.path, "--lf")

        assert recorded == {f"{name}::test_fails": True}, (
            f"[atomic-set] lastfailed is {recorded!r}:\n{output(first)}"
        )
        raw = (
            pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
        ).read_bytes()
        raw.decode("utf-8")  # Valid UTF-8: stock reads it back.
        assert "rerun previous 1 failure" in rerun.stdout, output(rerun)
        assert " 1 failed in " in rerun.stdout, output(rerun)
