"""The races: one runner per scenario, each judging what its forced interleaving left."""

from __future__ import annotations

from collections.abc import Sequence
import json
from pathlib import Path
import shutil
import threading

from forktools.scenarios.harness import barrier_ids
from forktools.scenarios.harness import Findings
from forktools.scenarios.harness import finish
from forktools.scenarios.harness import leftovers
from forktools.scenarios.harness import missing_supporting_files
from forktools.scenarios.harness import Outcome
from forktools.scenarios.harness import run_pytest
from forktools.scenarios.harness import RunContext
from forktools.scenarios.harness import ScenarioError
from forktools.scenarios.harness import start_pytest
from forktools.scenarios.harness import touch_barrier
from forktools.scenarios.harness import write_project


def run_mkdir_race(ctx: RunContext) -> Outcome:
    """#12381: N xdist workers create the cache dir at once; the loser must not fail."""
    n = ctx.workers
    write_project(ctx.workdir, "mkdir_race")
    run = run_pytest(ctx, f"n{n}", ["-n", str(n)], env={"SCENARIO_WORKERS": str(n)})
    f = Findings()
    f.check_run(run)
    counts = run.counts()
    if counts.get("passed") != 2 * n or set(counts) - {"passed"}:
        f.problems.append(
            "outcomes "
            + (", ".join(f"{v} {k}" for k, v in counts.items()) or "unknown")
        )
    f.check_leftovers(ctx.workdir)
    f.check_barriers(ctx.workdir)
    arrived = barrier_ids(ctx.workdir, "arrive-")
    renamed = barrier_ids(ctx.workdir, "rename-")
    if len(arrived) < 2:
        f.errors.append(f"only {len(arrived)} worker(s) reached the fixture, no race")
    f.notes.append(f"{len(arrived)}/{n} workers raced, {len(renamed)} renamed")
    missing = missing_supporting_files(ctx.workdir / ".pytest_cache")
    if missing and run.returncode == 0:
        # A release whose cache.mkdir() never writes them (8.1.x, #12167) lacks them
        # without any race: only a difference from a serial control run counts.
        control = ctx.workdir / "serial-control"
        write_project(control, "mkdir_race")
        serial = run_pytest(
            ctx, "serial", [], cwd=control, env={"SCENARIO_WORKERS": "1"}
        )
        if (
            missing_supporting_files(control / ".pytest_cache") == missing
            and serial.returncode == 0
        ):
            f.notes.append(
                f"{', '.join(missing)} missing even serially (#12167, not a race)"
            )
        else:
            f.problems.append(f"missing after the race: {', '.join(missing)}")
    return f.outcome()


def run_permissions(ctx: RunContext) -> Outcome:
    """#12308: the cache dir and a value file get the modes the umask implies."""
    f = Findings()
    for umask, dir_mode, file_mode in ((0o022, 0o755, 0o644), (0o077, 0o700, 0o600)):
        project = ctx.workdir / f"umask-{umask:03o}"
        write_project(project, "permissions")
        run = run_pytest(ctx, f"umask{umask:03o}", [], cwd=project, umask=umask)
        f.check_run(run)
        cachedir = project / ".pytest_cache"
        value = cachedir / "v" / "scenario" / "perm"
        if not value.is_file():
            f.problems.append(f"umask {umask:03o}: no value file")
            continue
        got_dir, got_file = (
            cachedir.stat().st_mode & 0o777,
            value.stat().st_mode & 0o777,
        )
        if (got_dir, got_file) != (dir_mode, file_mode):
            f.problems.append(
                f"umask {umask:03o}: dir {got_dir:04o} (want {dir_mode:04o}),"
                f" value {got_file:04o} (want {file_mode:04o})"
            )
        else:
            f.notes.append(f"umask {umask:03o}: {got_dir:04o}/{got_file:04o}")
    return f.outcome()


def run_torn_read(ctx: RunContext) -> Outcome:
    """A reader in another process reads a value while it is half rewritten."""
    write_project(ctx.workdir, "torn_read")
    writer = start_pytest(ctx, "writer", ["test_writer.py"], cwd=ctx.workdir)
    reader = start_pytest(ctx, "reader", ["test_reader.py"], cwd=ctx.workdir)
    runs = finish([writer, reader], ctx.timeout)
    f = Findings()
    for run in runs:
        f.check_run(run)
    f.check_barriers(ctx.workdir)
    f.check_leftovers(ctx.workdir)
    saw_file = ctx.workdir / "reader-saw.json"
    if not saw_file.is_file():
        f.errors.append("the reader recorded nothing")
    else:
        saw = json.loads(saw_file.read_text(encoding="utf-8"))
        if saw == "DEFAULT":
            f.problems.append("reader got the default mid-write (torn value file)")
        elif saw in ("old", "new"):
            f.notes.append(f"reader saw the {saw} value, complete")
        else:
            f.problems.append(f"reader saw {saw!r}")
    if not barrier_ids(ctx.workdir, "half-written"):
        f.errors.append("the writer never reached the half-written point")
    return f.outcome()


def run_cache_clear_late_worker(ctx: RunContext) -> Outcome:
    """#6670: a replacement worker must not re-run ``--cache-clear`` mid-session."""
    write_project(ctx.workdir, "late_worker")
    run = run_pytest(
        ctx, "late", ["--cache-clear", "-n", "2", "--max-worker-restart=2"]
    )
    f = Findings()
    f.check_run(run, expect_exit=None)
    for needle in run.found(["rm_rf"]):
        f.problems.append(f"{needle!r} in output")
    if run.returncode not in (0, 1):
        f.problems.append(f"exit {run.returncode}")
    f.check_barriers(ctx.workdir)
    configured = barrier_ids(ctx.workdir, "configured-")
    crashed = barrier_ids(ctx.workdir, "crashing-")
    if (
        not crashed
        or "replacing crashed worker" not in run.output
        or len(configured) < 3
    ):
        f.errors.append(
            f"no replacement worker ({len(configured)} worker processes, crash: {bool(crashed)})"
        )
    if (ctx.workdir / ".pytest_cache" / "v" / "scenario" / "kept").is_file():
        f.notes.append(
            f"value kept across a replacement worker ({len(configured)} worker processes)"
        )
    else:
        f.problems.append(
            "value written before the crash was wiped by the replacement worker"
        )
    return f.outcome()


def run_crash_leftovers(ctx: RunContext) -> Outcome:
    """A process killed while publishing the cache dir or replacing a value, then a rerun."""
    f = Findings()
    project = ctx.workdir
    write_project(project, "crash")
    seen: set[Path] = set()
    for phase in ("publish", "set"):
        killed = run_pytest(ctx, f"kill-{phase}", [], env={"SCENARIO_KILL": phase})
        fired = bool(barrier_ids(project, f"killed-{phase}"))
        if fired:
            note = f"{phase}: killed"
        else:
            f.check_run(killed)
            note = f"{phase}: no rename to kill"
        rerun = run_pytest(ctx, f"rerun-{phase}", [])
        f.check_run(rerun)
        found = [p for p in leftovers(project) if p not in seen]
        seen.update(found)
        if found:
            names = ", ".join(str(p.relative_to(project)) for p in found[:3])
            f.problems.append(
                f"{note}, {len(found)} new leftover(s) after the rerun: {names}"
            )
        else:
            f.notes.append(f"{note}, nothing new left after the rerun")
    return f.outcome()


def _overlapping_sessions(
    ctx: RunContext, projects: Sequence[str], expect_exit: int
) -> Findings:
    """Sessions A (``test_a.py``) and B (``test_b.py``): B reads the cache before A
    writes it and writes after A, held by the barriers of ``lastfailed/conftest.py``."""
    write_project(ctx.workdir, *projects)
    b = start_pytest(
        ctx, "B", ["test_b.py"], cwd=ctx.workdir, env={"SCENARIO_ROLE": "B"}
    )
    a = start_pytest(
        ctx, "A", ["test_a.py"], cwd=ctx.workdir, env={"SCENARIO_ROLE": "A"}
    )
    f = Findings()
    for run in finish([a, b], ctx.timeout):
        f.check_run(run, expect_exit=expect_exit)
    f.check_barriers(ctx.workdir)
    return f


def run_lastfailed_lost_update(ctx: RunContext) -> Outcome:
    """#6423: two overlapping sessions must both keep their failure in lastfailed."""
    f = _overlapping_sessions(ctx, ["lastfailed"], 1)
    lastfailed_file = ctx.workdir / ".pytest_cache" / "v" / "cache" / "lastfailed"
    try:
        lastfailed = json.loads(lastfailed_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        f.problems.append(f"lastfailed unreadable: {exc}")
        return f.outcome()
    want = {"test_a.py::test_a_fails", "test_b.py::test_b_fails"}
    lost = sorted(want - set(lastfailed))
    if lost:
        f.problems.append(f"lastfailed lost {', '.join(lost)}")
    else:
        f.notes.append("lastfailed keeps both sessions' failures")
    return f.outcome()


_calibration: dict[str, int] = {}
_calibration_lock = threading.Lock()


def _count_cache_calls(ctx: RunContext) -> int:
    """Cache-related write calls of one undisturbed session in a fresh dir, per env."""
    key = str(ctx.python)
    with _calibration_lock:
        if key in _calibration:
            return _calibration[key]
    project = ctx.workdir / "calibrate"
    write_project(project, "kill_random")
    run = run_pytest(ctx, "calibrate", [], cwd=project)
    counts = barrier_ids(project, "fs-calls-")
    if run.returncode != 0 or not counts:
        raise ScenarioError(f"calibration run failed (exit {run.returncode})")
    calls = int(counts.pop())
    with _calibration_lock:
        _calibration[key] = calls
    return calls


def run_kill_random(ctx: RunContext) -> Outcome:
    """A session killed at a random cache write call, then a rerun that must work."""
    total = _count_cache_calls(ctx)
    kill_at = ctx.rng.randint(1, total)
    project = ctx.workdir / "trial"
    write_project(project, "kill_random")
    run_pytest(ctx, "killed", [], cwd=project, env={"SCENARIO_KILL_AT": str(kill_at)})
    where = barrier_ids(project, "killed-")
    f = Findings()
    f.notes.append(
        f"killed at {where.pop() if where else 'nothing (' + str(kill_at) + ')'} of {total}"
    )
    rerun = run_pytest(
        ctx, "rerun", [], cwd=project, env={"SCENARIO_TOKEN": f"t{kill_at}"}
    )
    f.check_run(rerun)
    if rerun.counts() != {"passed": 1}:
        f.problems.append("set/get round trip failed after the rerun")
    missing = missing_supporting_files(project / ".pytest_cache")
    if missing:
        f.problems.append(f"missing after the rerun: {', '.join(missing)}")
    f.check_leftovers(project, when=" after the rerun")
    return f.outcome()


def run_umask_flip(ctx: RunContext) -> Outcome:
    """Publishing the cache dir must not change the process umask (8.2.1's fix of #12308 does)."""
    write_project(ctx.workdir, "permissions", "umask_flip")
    run = run_pytest(ctx, "umask", [], umask=0o022)
    f = Findings()
    f.check_run(run)
    if not (ctx.workdir / ".pytest_cache" / "v" / "scenario" / "perm").is_file():
        f.errors.append("no value was written")
    log = ctx.workdir / "umask-calls"
    calls = log.read_text(encoding="utf-8").split() if log.exists() else []
    if calls:
        f.problems.append(f"the process umask was set to {', '.join(calls)}")
    else:
        f.notes.append("umask never changed")
    return f.outcome()


def _read_value(f: Findings, path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        f.problems.append(f"{path.name} unreadable: {exc}")
        return None


def run_lastfailed_fixed_test(ctx: RunContext) -> Outcome:
    """A session whose test now passes removes only that entry; others' stay (#6423)."""
    write_project(ctx.workdir, "lastfailed_fixed")
    lastfailed_file = ctx.workdir / ".pytest_cache" / "v" / "cache" / "lastfailed"
    lastfailed_file.parent.mkdir(parents=True)
    seeded = {"test_fixed.py::test_fixed": True, "test_old.py::test_old": True}
    lastfailed_file.write_text(json.dumps(seeded), encoding="utf-8")
    fixed = start_pytest(ctx, "fixed", ["test_fixed.py"], cwd=ctx.workdir)
    other = start_pytest(ctx, "other", ["test_other.py"], cwd=ctx.workdir)
    f = Findings()
    (other_run,) = finish([other], ctx.timeout)
    touch_barrier(ctx.workdir, "other-done")
    (fixed_run,) = finish([fixed], ctx.timeout)
    f.check_run(fixed_run)
    f.check_run(other_run, expect_exit=1)
    f.check_barriers(ctx.workdir)
    got = _read_value(f, lastfailed_file)
    want = {"test_old.py::test_old": True, "test_other.py::test_other": True}
    if isinstance(got, dict) and got != want:
        f.problems.append(f"lastfailed is {sorted(got)}, want {sorted(want)}")
    return f.outcome()


def run_lastfailed_finish_together(ctx: RunContext) -> Outcome:
    """Sessions that all read lastfailed, then all write it at once, lose nothing."""
    sessions = 4
    write_project(ctx.workdir, "finish_together")
    session = ctx.workdir / "test_session.py"
    for i in range(sessions):
        shutil.copyfile(session, ctx.workdir / f"test_{i}.py")
    session.unlink()
    env = {"SCENARIO_SESSIONS": str(sessions)}
    started = [
        start_pytest(ctx, f"s{i}", [f"test_{i}.py"], cwd=ctx.workdir, env=env)
        for i in range(sessions)
    ]
    f = Findings()
    for run in finish(started, ctx.timeout):
        f.check_run(run, expect_exit=1)
    f.check_barriers(ctx.workdir)
    got = _read_value(f, ctx.workdir / ".pytest_cache" / "v" / "cache" / "lastfailed")
    want = {f"test_{i}.py::test_fails_on_purpose" for i in range(sessions)}
    if isinstance(got, dict) and set(got) != want:
        f.problems.append(f"lastfailed kept {len(got)} of {sessions}: {sorted(got)}")
    return f.outcome()


def run_nodeids_lost_update(ctx: RunContext) -> Outcome:
    """``cache/nodeids`` (``--nf``) keeps the node ids of two overlapping sessions."""
    f = _overlapping_sessions(ctx, ["lastfailed", "nodeids"], 0)
    got = _read_value(f, ctx.workdir / ".pytest_cache" / "v" / "cache" / "nodeids")
    want = ["test_a.py::test_a_passes", "test_b.py::test_b_passes"]
    if isinstance(got, list) and got != want:
        f.problems.append(f"nodeids kept {got}, want {want}")
    return f.outcome()
