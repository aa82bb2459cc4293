"""Running commands for the checks, and what a check reports."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import os
from pathlib import Path
import subprocess
import sys


INSTALL_TIMEOUT = 900.0
#: Environment variables that would change how the checks run.
SCRUBBED_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
)


def progress(message: str) -> None:
    print(f"export: {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One cell of a branch's table: ``ok``, ``FAILED``, ``skipped`` or ``waiting``."""

    status: str
    detail: str
    seconds: float = 0.0

    @classmethod
    def ok(cls, detail: str) -> CheckResult:
        return cls("ok", detail)

    @classmethod
    def failed(cls, detail: str) -> CheckResult:
        first, _, rest = detail.strip().partition("\n")
        return cls("FAILED", f"{first}\n{rest[-3000:]}" if rest else first)

    @classmethod
    def skipped(cls, detail: str) -> CheckResult:
        return cls("skipped", detail)

    @classmethod
    def waiting(cls, detail: str) -> CheckResult:
        return cls("waiting", detail)

    def timed(self, seconds: float) -> CheckResult:
        return dataclasses.replace(self, seconds=seconds)


def check_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(
        PYTHONDONTWRITEBYTECODE="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        **extra,
    )
    return env


def run(
    command: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; a timeout or a missing program is exit 124/127."""
    try:
        return subprocess.run(
            list(command),
            check=False,
            cwd=cwd,
            env=dict(env or check_env()),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = e.output if isinstance(e.output, str) else ""
        return subprocess.CompletedProcess(
            list(command), 124, out, f"timed out after {timeout} s"
        )
    except OSError as e:
        return subprocess.CompletedProcess(list(command), 127, "", str(e))


def pip_install(python: Path, requirements: Sequence[str], *extra: str) -> str | None:
    """Install into a venv; None on success, else pip's last error line."""
    done = run(
        [str(python), "-m", "pip", "install", "-q", *extra, *requirements],
        cwd=python.parent,
        timeout=INSTALL_TIMEOUT,
    )
    if done.returncode == 0:
        return None
    errors = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.startswith("ERROR")
    ]
    return errors[-1] if errors else f"pip exited with {done.returncode}"


def make_venv(python: str, path: Path) -> Path:
    """A venv at ``path`` made by ``python``; its interpreter."""
    done = run(
        [python, "-m", "venv", str(path)], cwd=path.parent, timeout=INSTALL_TIMEOUT
    )
    if done.returncode != 0:
        raise RuntimeError(f"{python} -m venv {path} failed: {done.stderr.strip()}")
    return path / "bin" / "python"
