"""Isolated, cached virtual envs holding one pytest (a release or our fork) plus pytest-xdist.

Used by the matrix, stress, bench, bisect and mutations tools (and by hand:
``python scripts/envs.py 8.2.0 fork`` prints each env's interpreter). An env lives
in ``<root>/<version>`` (root: ``$PYTEST_RACE_MATRIX_CACHE`` or
``~/.cache/pytest-race-matrix``) and is reused while its marker file matches what
would be installed now: the pytest release (pinned with ``===``, so a local
``8.2.0+label`` build never satisfies it) or, for ``fork``, a hash of this
checkout's ``src/``, ``backend/`` and ``pyproject.toml``. uv is used when it is on
PATH or beside the running interpreter, else ``python -m venv`` and pip. Every
install ends with a dependency check and a version check.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from collections.abc import Sequence
import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
import shutil
import sys

from forktools import proc
from forktools import REPO_ROOT


#: The literal version name of our own build.
FORK = "fork"
XDIST_VERSION = "3.8.0"
DEFAULT_ROOT = Path(
    os.environ.get("PYTEST_RACE_MATRIX_CACHE")
    or Path.home() / ".cache" / "pytest-race-matrix"
)
MARKER = "race-matrix-env.json"
#: Bumped when the way envs are built changes, so cached envs are rebuilt.
ENV_LAYOUT = "2"
#: Seconds one installer command may take (2 shared cores, cold caches).
INSTALL_TIMEOUT = 900.0
#: What the fork's key hashes, relative to the repository root.
FORK_SOURCES = ("src", "backend", "pyproject.toml")

#: As root, ``chmod`` has no effect: drop the DAC capabilities (still uid 0) so
#: that file modes apply, as upstream's permission tests and ours need.
DROP_DAC = (
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
)

VERSION_PROBE = """\
import importlib.metadata, json, os, _pytest
print(json.dumps({
    "pytest": importlib.metadata.version("pytest"),
    "pytest-xdist": importlib.metadata.version("pytest-xdist"),
    "_pytest": os.path.dirname(_pytest.__file__),
}))
"""


class EnvError(Exception):
    """An env could not be created, installed or verified."""


def find_uv() -> str | None:
    """The uv executable on PATH or next to the running interpreter, if any."""
    if os.environ.get("RACE_MATRIX_INSTALLER") == "pip":
        return None
    beside = Path(sys.executable).parent / "uv"
    return shutil.which("uv") or (str(beside) if beside.is_file() else None)


def env_python(envdir: Path) -> Path:
    """The interpreter of the virtual env ``envdir``."""
    return envdir / "bin" / "python"


def fork_source_hash(repo: Path = REPO_ROOT) -> str:
    """A short hash over the fork's build inputs (paths and contents)."""
    digest = hashlib.sha256()
    for top in FORK_SOURCES:
        base = repo / top
        files = (
            [base]
            if base.is_file()
            else sorted(p for p in base.rglob("*") if p.is_file())
            if base.is_dir()
            else []
        )
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(path.relative_to(repo).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def wanted(version: str, *, xdist: str, repo: Path) -> dict[str, str]:
    """The marker an up-to-date env for ``version`` carries."""
    marker = {
        "layout": ENV_LAYOUT,
        "version": version,
        "xdist": xdist,
        "base_python": sys.version.split()[0],
    }
    if is_fork(version):
        marker["fork_source"] = fork_source_hash(repo)
        marker["repo"] = str(repo)
    return marker


def _run(
    cmd: Sequence[str],
    *,
    what: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    return proc.run(
        cmd, what=what, timeout=INSTALL_TIMEOUT, env=env, cwd=cwd, error=EnvError
    ).stdout


def installer_env() -> dict[str, str]:
    """Our environment minus variables that would leak into the env's installs."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def create_venv(envdir: Path, *, uv: str | None) -> Path:
    """Create an empty virtual env at ``envdir`` and return its interpreter."""
    if uv:
        _run(
            [uv, "venv", "--quiet", "--python", sys.executable, str(envdir)],
            what="uv venv",
            env=installer_env(),
        )
    else:
        _run(
            [sys.executable, "-m", "venv", str(envdir)],
            what="python -m venv",
            env=installer_env(),
        )
    return env_python(envdir)


def pip_install(
    python: Path,
    requirements: Sequence[str],
    *,
    uv: str | None,
    reinstall: str | None = None,
    env: dict[str, str],
) -> None:
    """Install ``requirements`` into the env of ``python``; ``reinstall`` names a package to rebuild."""
    if uv:
        # pip compiles bytecode by default, uv does not: without .pyc files every
        # pytest start recompiles _pytest (three times the CPU of a start).
        cmd = [
            uv,
            "pip",
            "install",
            "--quiet",
            "--compile-bytecode",
            "--python",
            str(python),
        ]
        if reinstall:
            cmd += ["--reinstall-package", reinstall]
    else:
        cmd = [str(python), "-m", "pip", "install", "--quiet"]
        if reinstall:
            cmd += ["--force-reinstall"]
    _run([*cmd, *requirements], what="install " + " ".join(requirements), env=env)


def pip_check(python: Path, *, uv: str | None) -> None:
    """Fail unless the env's installed distributions have consistent requirements."""
    if uv:
        _run(
            [uv, "pip", "check", "--quiet", "--python", str(python)],
            what="uv pip check",
            env=installer_env(),
        )
    else:
        _run([str(python), "-m", "pip", "check"], what="pip check", env=installer_env())


def probe_versions(python: Path) -> dict[str, str]:
    """Versions of pytest and pytest-xdist in the env, and where ``_pytest`` lives."""
    out = _run(
        [str(python), "-I", "-c", VERSION_PROBE],
        what="version probe",
        cwd=python.parent,
    )
    result: dict[str, str] = json.loads(out)
    return result


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_marker(envdir: Path) -> dict[str, str] | None:
    """The marker of a completed env, or None."""
    try:
        data = json.loads((envdir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def fork_base(version: str) -> str | None:
    """The base of a fork spec: ``fork`` is the default base, ``fork@9.2.0`` names one."""
    return version.partition("@")[2] or None if version.startswith(FORK + "@") else None


def is_fork(version: str) -> bool:
    return version == FORK or version.startswith(FORK + "@")


def ensure_env(
    version: str,
    *,
    root: Path = DEFAULT_ROOT,
    xdist: str = XDIST_VERSION,
    repo: Path = REPO_ROOT,
) -> Path:
    """Return the interpreter of an env with pytest ``version`` (or ``fork[@base]``) and pytest-xdist.

    Reuses ``<root>/<version>`` when its marker matches; otherwise rebuilds it from
    scratch. Concurrent callers for one version wait for each other (a lock file).
    """
    envdir = root / version
    want = wanted(version, xdist=xdist, repo=repo)
    with locked(root / f".{version}.lock"):
        have = read_marker(envdir)
        if have is not None and all(have.get(k) == v for k, v in want.items()):
            return env_python(envdir)
        if envdir.exists():
            shutil.rmtree(envdir)
        uv = find_uv()
        python = create_venv(envdir, uv=uv)
        if is_fork(version):
            base = fork_base(version)
            pip_install(
                python,
                [
                    *(["-C", f"base={base}"] if base else []),
                    str(repo),
                    f"pytest-xdist=={xdist}",
                ],
                uv=uv,
                reinstall="pytest",
                env=installer_env(),
            )
        else:
            pip_install(
                python,
                [f"pytest==={version}", f"pytest-xdist=={xdist}"],
                uv=uv,
                env=installer_env(),
            )
        pip_check(python, uv=uv)
        got = probe_versions(python)
        if got["pytest-xdist"] != xdist:
            raise EnvError(
                f"{version}: pytest-xdist {got['pytest-xdist']} installed, wanted {xdist}"
            )
        if not is_fork(version) and got["pytest"] != version:
            raise EnvError(f"{version}: pytest {got['pytest']} installed instead")
        if not Path(got["_pytest"]).resolve().is_relative_to(envdir.resolve()):
            raise EnvError(
                f"{version}: _pytest imports from {got['_pytest']}, outside the env"
            )
        want.update(installed=got["pytest"], installer="uv" if uv else "pip")
        tmp = envdir / (MARKER + ".tmp")
        tmp.write_text(json.dumps(want, indent=2), encoding="utf-8")
        os.replace(tmp, envdir / MARKER)
    return env_python(envdir)


def installed_version(version: str, *, root: Path = DEFAULT_ROOT) -> str | None:
    """The pytest version string recorded in the env of ``version`` (``8.2.0+fork.abc``)."""
    marker = read_marker(root / version)
    return marker.get("installed") if marker else None


def add_root_option(parser: argparse.ArgumentParser) -> None:
    """``--root``: where the cached envs live."""
    parser.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help="env cache (default: %(default)s)",
    )


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the envs named on the command line and print their interpreters."""
    parser = argparse.ArgumentParser(description="Build or reuse cached pytest envs.")
    parser.add_argument("versions", nargs="+", help="pytest releases, or 'fork'")
    add_root_option(parser)
    parser.add_argument(
        "--xdist",
        default=XDIST_VERSION,
        help="pytest-xdist version (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    status = 0
    for version in args.versions:
        print(f"[env] {version}: building or reusing", file=sys.stderr)
        try:
            print(f"{version}\t{ensure_env(version, root=args.root, xdist=args.xdist)}")
        except EnvError as exc:
            print(f"[env] {version}: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
