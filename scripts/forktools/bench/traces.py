"""What the benchmark reads off the system: strace logs, cache snapshots, memory filesystems."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import os
from pathlib import Path
import re
import shutil
import subprocess

from forktools.bench.config import BenchError
from forktools.bench.config import TMPFS_SIZE
from forktools.bench.running import progress


@contextlib.contextmanager
def memory_place(mountpoint: Path) -> Iterator[Path | None]:
    """A tmpfs directory for the run: one mounted at ``mountpoint`` (root), else ``/dev/shm``.

    The mount is private to the benchmark (other users of ``/dev/shm`` do not
    disturb it) and unmounted afterwards; None where neither is possible.
    """
    mounted = False
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount"):
        mountpoint.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={TMPFS_SIZE}",
                "tmpfs",
                str(mountpoint),
            ],
            capture_output=True,
            check=False,
        )
        mounted = done.returncode == 0
        if not mounted:
            progress(
                f"could not mount a tmpfs ({done.stderr.decode().strip()}): using /dev/shm"
            )
    try:
        if mounted:
            yield mountpoint
        else:
            shm = memory_filesystem()
            yield None if shm is None else shm / f"pytest-bench-{os.getpid()}"
    finally:
        if mounted:
            subprocess.run(
                ["umount", str(mountpoint)], capture_output=True, check=False
            )
        else:
            shutil.rmtree(
                Path("/dev/shm") / f"pytest-bench-{os.getpid()}", ignore_errors=True
            )


#: A line of ``strace -f`` output: optional pid, then the call's name.
STRACE_CALL = re.compile(r"^(?:\d+\s+)?([a-z_0-9]+)\(")


def syscalls_between(trace: str, start: str, end: str) -> int:
    """System calls in an strace log between the marker stats ``start`` and ``end`` (exclusive)."""
    inside = False
    count = 0
    for line in trace.splitlines():
        if "/pytest-bench-marker/" in line:
            if "/pytest-bench-marker/" + start + '"' in line:
                inside, count = True, 0
            elif inside and "/pytest-bench-marker/" + end + '"' in line:
                return count
            continue
        if inside and STRACE_CALL.match(line) and "resumed>" not in line:
            count += 1
    raise BenchError(f"strace log without the markers {start}/{end}")


#: The calls that mark a stretch for callgrind, as the projects make them: the
#: interpreter's functions behind ``os.getppid()`` (start) and ``os.getpgrp()``
#: (end), which neither pytest nor the cache plugin calls.
CALLGRIND_START, CALLGRIND_END = "os_getppid", "os_getpgrp"


def callgrind_stretches(
    out: Path, stretches: int, what: str, run: Callable[..., object]
) -> list[int] | None:
    """``run(prefix=...)`` under callgrind: the instructions of its marked stretches, in order.

    The dumps go to ``out.N`` and are removed once read.  Hashes are seeded
    alike (``PYTHONHASHSEED=0``): the same count every run.  None, with a note
    naming ``what``, without valgrind or without ``stretches`` counts (an
    interpreter stripped of the marks' symbols leaves no such dump).
    """
    if shutil.which("valgrind") is None:
        progress(f"{what}: valgrind not found: not measured")
        return None
    for old in out.parent.glob(out.name + "*"):
        old.unlink()
    run(prefix=_callgrind_prefix(out))
    counts = _callgrind_counts(out)
    if len(counts) != stretches:
        progress(
            f"{what}: {len(counts)} counted stretches, not {stretches}"
            " (stripped interpreter?): not measured"
        )
        return None
    return counts


def _callgrind_prefix(out: Path) -> list[str]:
    return [
        "env",
        "PYTHONHASHSEED=0",
        "valgrind",
        "--tool=callgrind",
        f"--zero-before={CALLGRIND_START}",
        f"--dump-before={CALLGRIND_END}",
        f"--callgrind-out-file={out}",
    ]


def _callgrind_counts(out: Path) -> list[int]:
    dumps = sorted(out.parent.glob(out.name + ".*"), key=lambda p: int(p.suffix[1:]))
    counts = []
    for path in dumps:
        text = path.read_text(encoding="utf-8")
        found = re.search(r"^summary: (\d+)$", text, re.MULTILINE)
        if f"Trigger: --dump-before={CALLGRIND_END}" in text and found:
            counts.append(int(found.group(1)))
        path.unlink()
    out.unlink(missing_ok=True)
    return counts


#: A write call in ``strace -y`` output, on a descriptor of a file in ``.pytest_cache``.
STRACE_CACHE_WRITE = re.compile(
    r"^(?:\d+\s+)?(?:write|pwrite64|writev)\(\d+<[^>]*/\.pytest_cache/[^>]*>.*= (\d+)$"
)


def cache_writes(trace: str) -> tuple[int, int]:
    """Write calls to files under ``.pytest_cache`` in an ``strace -y`` log, and their bytes."""
    calls = written = 0
    for line in trace.splitlines():
        match = STRACE_CACHE_WRITE.match(line)
        if match:
            calls += 1
            written += int(match.group(1))
    return calls, written


def cache_snapshot(cachedir: Path) -> dict[str, tuple[int, int, int]]:
    """Inode, size and mtime of every file below ``cachedir``: a rewrite changes one of them."""
    out = {}
    for dirpath, _, filenames in os.walk(cachedir):
        for name in filenames:
            path = Path(dirpath, name)
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            out[str(path.relative_to(cachedir))] = (
                st.st_ino,
                st.st_size,
                st.st_mtime_ns,
            )
    return out


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from ``/proc/mounts``), or ``?``."""
    best, kind = "", "?"
    target = str(path.resolve())
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return kind
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def memory_filesystem() -> Path | None:
    """A writable tmpfs directory (``/dev/shm``), or None where there is none."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and filesystem_of(shm) == "tmpfs":
        return shm
    return None
