"""Run a command with a time limit; on failure, say what failed with the tail of its output."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
from pathlib import Path
import subprocess


#: Lines of a failing command's output kept in the error.
TAIL_LINES = 25


class CommandError(Exception):
    """A command did not start, outlived its time limit or exited non-zero."""


@dataclasses.dataclass(frozen=True)
class Finished:
    """A finished command: exit status, output and wall seconds."""

    returncode: int
    stdout: str
    stderr: str


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text``, stripped."""
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    cmd: Sequence[str],
    *,
    what: str,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    merge_stderr: bool = False,
    error: type[Exception] = CommandError,
) -> Finished:
    """Run ``cmd`` (no stdin) for at most ``timeout`` seconds.

    Raises ``error`` naming ``what`` when it cannot start or times out, and,
    with ``check``, when it exits non-zero (with the tail of its output).
    ``merge_stderr`` interleaves stderr into stdout, as a terminal shows it.
    """
    try:
        done = subprocess.run(
            list(cmd),
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            timeout=timeout,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what}: timed out after {timeout:.0f}s") from exc
    except OSError as exc:
        raise error(f"{what}: {exc}") from exc
    out = done.stdout.decode("utf-8", "replace")
    err = "" if merge_stderr else done.stderr.decode("utf-8", "replace")
    if check and done.returncode != 0:
        raise error(f"{what} failed (exit {done.returncode}):\n{tail(out + err)}")
    return Finished(done.returncode, out, err)
