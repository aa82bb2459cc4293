"""Beyond one machine: ``--lf``, ``--ff`` and ``--nf`` across remote xdist workers and CI shards.

Remote workers are real ``--tx popen//chdir=DIR`` workers (remote in all but the
network: a directory and a cache of their own), and ``--tx ssh=localhost``
where an sshd can be started.  Shards are separate checkouts at other paths,
as CI jobs on other machines are, each running a quarter of the suite.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys

from race_harness import require
from race_harness import unavailable

from _pytest.pytester import Pytester
import pytest


RUN_TIMEOUT = 240.0
PREFIX = "pytest-cache-files-"

# Every worker records what it collected (after --lf/--ff/--nf) under its rootdir,
# and every test uses the worker's own cache: set, get, mkdir.
PROBE_CONFTEST = """
import json
import pytest

def worker_id(config):
    return getattr(config, "workerinput", {}).get("workerid", "main")

def pytest_collection_finish(session):
    folder = session.config.rootpath / "collected"
    folder.mkdir(exist_ok=True)
    ids = [item.nodeid for item in session.items]
    (folder / f"{worker_id(session.config)}.json").write_text(json.dumps(ids))

@pytest.fixture(autouse=True)
def probe(request, cache):
    wid = worker_id(request.config)
    cache.set(f"probe/{wid}", wid)
    assert cache.get(f"probe/{wid}", None) == wid
    (cache.mkdir("ran") / f"{wid}-{request.node.name}").touch()
"""
TESTS = """
import pytest

@pytest.mark.parametrize("i", range(8))
def test_x(i):
    pass
"""
ALL_X = [f"test_x.py::test_x[{i}]" for i in range(8)]
NEW = "test_new.py::test_new"
# The controller's cache: three failures, and test_new.py is new to it.
CONTROLLER_FAILED = [ALL_X[3], ALL_X[5], ALL_X[6]]
# What a remote worker's own cache says (an older run): another failure, nothing new.
STALE_FAILED = [ALL_X[0]]


def autoload_env() -> dict[str, str]:
    """The environment with plugin autoload on (pytest's own conftest may turn it off)."""
    return {
        k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
    }


def run_pytest(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=cwd,
        env={**autoload_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def output(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def write_values(root: Path, **values: object) -> None:
    """Write cache values (``lastfailed=...``) as a session of any release leaves them."""
    folder = root / ".pytest_cache" / "v" / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in values.items():
        (folder / key).write_text(json.dumps(value))


def left_over(*roots: Path) -> list[str]:
    return sorted(str(p) for root in roots for p in root.rglob(f"{PREFIX}*"))


def collected(root: Path) -> dict[str, list[str]]:
    """Per worker id, the node ids that worker collected in ``root``, in order."""
    return {
        p.stem: json.loads(p.read_text()) for p in (root / "collected").glob("*.json")
    }


def ran_in(root: Path) -> set[str]:
    """The workers that ran a test with ``root`` as their directory."""
    folder = root / ".pytest_cache" / "d" / "ran"
    return (
        {p.name.split("-")[0] for p in folder.iterdir()} if folder.is_dir() else set()
    )


def make_project(root: Path, *, failed: list[str], nodeids: list[str]) -> None:
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "conftest.py").write_text(PROBE_CONFTEST)
    (root / "test_x.py").write_text(TESTS)
    (root / "test_new.py").write_text("def test_new():\n    pass\n")
    # test_new.py is older than test_x.py: only "new" can put it first for --nf.
    stamp = (root / "test_x.py").stat().st_mtime
    os.utime(root / "test_new.py", (stamp - 100, stamp - 100))
    write_values(root, lastfailed=dict.fromkeys(failed, True), nodeids=nodeids)


def make_remote_setup(base: Path, controller_failed: list[str]) -> list[Path]:
    """The controller's directory, a copy for a local run, and two remote workers' directories.

    The workers' copies keep the files' timestamps (as ``rsync -t`` does) and
    hold a stale cache of their own.
    """
    controller = base / "controller"
    make_project(controller, failed=controller_failed, nodeids=ALL_X)
    local = base / "local"
    shutil.copytree(controller, local)
    workers = [base / "w1", base / "w2"]
    for worker in workers:
        shutil.copytree(controller, worker)
        write_values(
            worker, lastfailed=dict.fromkeys(STALE_FAILED, True), nodeids=[*ALL_X, NEW]
        )
    return [controller, local, *workers]


class TestRemoteWorkers:
    @pytest.mark.slow
    @pytest.mark.layer("remote-workers")
    @pytest.mark.parametrize(
        ("args", "controller_failed"),
        [
            (["--lf"], CONTROLLER_FAILED),
            (["--ff"], CONTROLLER_FAILED),
            (["--nf"], CONTROLLER_FAILED),
            (["--lf", "--lfnf=none"], []),
            (["--lf", "--lfnf=all"], []),
        ],
    )
    def test_remote_workers_select_as_local_workers_do(
        self, pytester: Pytester, args: list[str], controller_failed: list[str]
    ) -> None:
        """pytest-xdist#326: each ``--tx popen//chdir`` worker selected by its own cache."""
        pytest.importorskip("xdist")
        controller, local, *workers = make_remote_setup(
            pytester.path, controller_failed
        )
        done = run_pytest(local, "-p", "xdist", "-n", "2", *args)
        require(done.returncode in (0, 5), f"local run:\n{output(done)}")
        expected = collected(local)
        require(len(expected) == 2, f"local workers: {expected}\n{output(done)}")
        (reference,) = {json.dumps(ids) for ids in expected.values()}
        txs = [f"--tx=popen//chdir={w}" for w in workers]
        done = run_pytest(controller, "-p", "xdist", "--dist=load", *txs, *args)
        seen = {**collected(workers[0]), **collected(workers[1])}
        assert all(json.dumps(ids) == reference for ids in seen.values()), (
            f"[remote-workers] {' '.join(args)}: remote workers collected {seen}, "
            f"local workers {json.loads(reference)}\n{output(done)}"
        )
        assert sorted(seen) == ["gw0", "gw1"], output(done)
        assert done.returncode in (0, 5), output(done)
        if json.loads(reference):
            ran = [ran_in(w) for w in workers]
            assert ran == [{"gw0"}, {"gw1"}], f"workers that ran tests: {ran}"
        assert left_over(pytester.path) == []

    @pytest.mark.layer("remote-workers")
    def test_lf_reruns_the_failures_across_remote_workers(
        self, pytester: Pytester
    ) -> None:
        """A failing run, then ``--lf``: the workers run exactly what failed, in their own caches."""
        pytest.importorskip("xdist")
        controller, _, *workers = make_remote_setup(pytester.path, [])
        for root in (controller, *workers):
            (root / "test_x.py").write_text(
                TESTS.replace("pass", "assert i not in (1, 4, 7)")
            )
        txs = [f"--tx=popen//chdir={w}" for w in workers]
        first = run_pytest(controller, "-p", "xdist", "--dist=load", *txs)
        assert first.returncode == 1, output(first)
        done = run_pytest(controller, "-p", "xdist", "--dist=load", *txs, "--lf")
        seen = {**collected(workers[0]), **collected(workers[1])}
        failed = [ALL_X[1], ALL_X[4], ALL_X[7]]
        assert all(ids == failed for ids in seen.values()), (
            f"[remote-workers] --lf after a run that failed {failed}: "
            f"remote workers collected {seen}\n{output(done)}"
        )
        assert "3 failed" in done.stdout, output(done)
        assert [ran_in(w) for w in workers] == [{"gw0"}, {"gw1"}]
        assert left_over(pytester.path) == []

    @pytest.mark.slow
    def test_ssh_workers_select_by_the_controller_cache(
        self, pytester: Pytester, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """``--tx ssh=localhost``: workers that are remote through the network too."""
        pytest.importorskip("xdist")
        ssh_config = start_sshd(tmp_path_factory.mktemp("sshd"))
        controller, _, *workers = make_remote_setup(pytester.path, CONTROLLER_FAILED)
        txs = [
            f"--tx=ssh_config={ssh_config}//ssh=h20-localhost//chdir={w}"
            f"//python={sys.executable}"
            for w in workers
        ]
        done = run_pytest(controller, "-p", "xdist", "--dist=load", *txs, "--lf")
        seen = {**collected(workers[0]), **collected(workers[1])}
        assert all(sorted(ids) == CONTROLLER_FAILED for ids in seen.values()), (
            f"[remote-workers] --lf over ssh: workers collected {seen}\n{output(done)}"
        )
        assert done.returncode == 0, output(done)


def start_sshd(folder: Path) -> Path:
    """An sshd on a free localhost port that admits a fresh key; the ssh_config that uses it."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd) or shutil.which("ssh-keygen") is None:
        unavailable("no sshd on this machine (install openssh-server to run it)")
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)],
            check=True,
            timeout=60,
        )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host'}\n"
        f"AuthorizedKeysFile {folder / 'client.pub'}\nPasswordAuthentication no\n"
        f"StrictModes no\nPidFile {folder / 'sshd.pid'}\nUsePAM no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # Its privilege separation directory.
    started = subprocess.run(
        [sshd, "-f", str(folder / "sshd_config")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if started.returncode != 0:
        unavailable(f"sshd would not start: {started.stderr.strip()}")
    config = folder / "ssh_config"
    config.write_text(
        f"Host h20-localhost\n  HostName 127.0.0.1\n  Port {port}\n"
        f"  IdentityFile {folder / 'client'}\n  StrictHostKeyChecking no\n"
        f"  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    probe = subprocess.run(
        ["ssh", "-F", str(config), "h20-localhost", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        unavailable(f"ssh to the test sshd failed: {probe.stderr.strip()}")
    return config


# The shards' suite: SHARD=k keeps every 4th test from the k-th, FAIL names the
# tests that fail (by name), as a CI matrix of four jobs would run it.
SHARD_CONFTEST = """
import os
import pytest

def pytest_collection_modifyitems(config, items):
    shard = os.environ.get("SHARD")
    if shard is None:
        return
    keep = [item for n, item in enumerate(items) if n % 4 == int(shard)]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep

@pytest.fixture(autouse=True)
def injected_failure(request):
    if request.node.name in os.environ.get("FAIL", "").split(","):
        pytest.fail("injected failure")
"""
SHARD_TESTS = """
import pytest

@pytest.mark.parametrize("i", range(12))
def test_s(i):
    pass
"""


def s(i: int) -> str:
    return f"test_s.py::test_s[{i}]"


def lf_selection(root: Path) -> list[str]:
    """The node ids ``--lf`` selects in ``root``."""
    done = run_pytest(root, "-p", "no:xdist", "--lf", "--co", "-q")
    return sorted(line for line in done.stdout.splitlines() if "::" in line)


def shard_pipeline(base: Path, *, first: str, second: str) -> tuple[Path, list[Path]]:
    """Run the whole suite once (failing ``first``), then as 4 shards (failing ``second``).

    Returns the merge job's checkout (the code of the second run and the
    cache of the first, as CI restores it) and the four shard checkouts, each
    at another path, as on other machines.  Shard 1 runs with two xdist workers.
    """
    main = base / "main"
    main.mkdir()
    (main / "pytest.ini").write_text("[pytest]\n")
    (main / "conftest.py").write_text(SHARD_CONFTEST)
    (main / "test_s.py").write_text(SHARD_TESTS)
    done = run_pytest(main, "-p", "no:xdist", env={"FAIL": first})
    require(done.returncode == 1, f"first run:\n{output(done)}")
    (main / "test_new.py").write_text("def test_new():\n    pass\n")
    shards = []
    for k in range(4):
        shard = base / f"runner-{k}" / "checkout"
        shutil.copytree(main, shard)
        workers = ["-p", "xdist", "-n", "2"] if k == 1 else ["-p", "no:xdist"]
        done = run_pytest(shard, *workers, env={"SHARD": str(k), "FAIL": second})
        require(done.returncode in (0, 1), f"shard {k}:\n{output(done)}")
        shards.append(shard)
    merger = base / "merge-job"
    shutil.copytree(main, merger)
    return merger, shards


class TestShardMerge:
    @pytest.mark.slow
    @pytest.mark.layer("shard-merge")
    def test_merged_shards_select_exactly_the_failures(
        self, pytester: Pytester
    ) -> None:
        """pytest#3139: ``--lf`` after a sharded run, a fixed test not selected again."""
        # test_s[1] fails, then is fixed; test_s[6] keeps failing; test_s[11] breaks.
        merger, shards = shard_pipeline(
            pytester.path, first="test_s[1],test_s[6]", second="test_s[6],test_s[11]"
        )
        lastrun = shards[1] / ".pytest_cache" / "v" / "cache" / "lastrun"
        ran = json.loads(lastrun.read_text()) if lastrun.exists() else None
        pattern = str(pytester.path / "runner-*" / "checkout" / ".pytest_cache")
        done = run_pytest(merger, "--cache-merge-from", pattern, "--cache-show")
        selected = lf_selection(merger)
        assert selected == [s(11), s(6)], (
            f"[shard-merge] --lf after merging 4 shards selected {selected}, "
            f"not the run's failures test_s[6] and test_s[11]\n{output(done)}"
        )
        assert done.returncode == 0, output(done)
        # Shard 1 (two workers) ran test_s[0], [4] and [8].
        assert ran == [s(0), s(4), s(8)], f"shard 1's cache/lastrun: {ran}"
        nodeids = json.loads(
            (merger / ".pytest_cache" / "v" / "cache" / "nodeids").read_text()
        )
        assert "test_new.py::test_new" in nodeids, "node ids of the shards united"
        assert left_over(pytester.path) == []

    @pytest.mark.slow
    @pytest.mark.layer("shard-merge")
    def test_a_broken_shard_is_named_and_the_others_merged(
        self, pytester: Pytester
    ) -> None:
        """One shard's cache corrupt, another missing: both named, the rest merged, exit 4."""
        merger, shards = shard_pipeline(
            pytester.path, first="test_s[3],test_s[5]", second="test_s[5],test_s[10]"
        )
        # Shard 2 ran test_s[5] (failed again); shard 0 ran test_s[3] (fixed).
        corrupt = shards[2] / ".pytest_cache" / "v" / "cache" / "lastfailed"
        corrupt.write_text('{"test_s.py::test_s[5]": tr')
        missing = pytester.path / "runner-9" / "checkout" / ".pytest_cache"
        args = [f"--cache-merge-from={shard / '.pytest_cache'}" for shard in shards]
        done = run_pytest(
            merger, *args, f"--cache-merge-from={missing}", "-p", "no:xdist", "--co"
        )
        selected = lf_selection(merger)
        # test_s[5]: shard 2 is skipped, so it keeps its earlier entry (failed).
        assert selected == [s(10), s(5)], (
            f"[shard-merge] --lf after merging 3 good shards of 5 selected {selected}, "
            f"not test_s[10] (shard 3) and test_s[5] (kept)\n{output(done)}"
        )
        assert done.returncode == 4, output(done)
        assert f"skipped {shards[2] / '.pytest_cache'}: {corrupt} unreadable" in (
            done.stderr
        ), output(done)
        assert f"skipped {missing}: no such directory" in done.stderr, output(done)

    @pytest.mark.layer("shard-merge")
    def test_a_shard_records_what_its_session_decided(self, pytester: Pytester) -> None:
        """``cache/lastrun``: the tests the last session ran, not those it deselected."""
        pytester.makeconftest(SHARD_CONFTEST)
        pytester.makepyfile(test_s=SHARD_TESTS)
        done = run_pytest(pytester.path, "-p", "no:xdist", env={"SHARD": "2"})
        assert done.returncode == 0, output(done)
        path = pytester.path / ".pytest_cache" / "v" / "cache" / "lastrun"
        ran = json.loads(path.read_text()) if path.exists() else None
        assert ran == [s(10), s(2), s(6)], f"[shard-merge] cache/lastrun: {ran}"

    @pytest.mark.slow
    def test_a_session_that_merges_and_runs_records_its_own_outcomes(
        self, pytester: Pytester
    ) -> None:
        """The merge job may run tests too: its own failures and fixes land in lastfailed."""
        merger, _ = shard_pipeline(pytester.path, first="test_s[1]", second="test_s[6]")
        pattern = str(pytester.path / "runner-*" / "checkout" / ".pytest_cache")
        done = run_pytest(
            merger,
            "-p",
            "no:xdist",
            "--cache-merge-from",
            pattern,
            "test_s.py::test_s[2]",
            "test_s.py::test_s[6]",
            env={"FAIL": "test_s[2]"},
        )
        assert done.returncode == 1, output(done)
        selected = lf_selection(merger)
        assert selected == [s(2)], (
            f"after a merge job that failed test_s[2] and passed test_s[6], --lf "
            f"selects {selected}\n{output(done)}"
        )
