"""The fork on each base's oldest Python: it builds there, and its merged module runs there.

The merged ``_pytest/cacheprovider.py`` runs inside every user's interpreter, and the
build (``backend/``) runs in every user's build environment: a construct newer than
the oldest Python a base admits (a runtime ``X | Y`` of classes, ``str.removeprefix``,
``sys.stdlib_module_names``) breaks only there.  So each case installs a clean clone
with that Python's own pip into a fresh venv (the build and the merge run on it),
then compiles and imports the installed merged module and runs a session that
uses the cache, on that Python.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
import shutil
import subprocess
import sys
import zipfile

from race_harness import unavailable

import pytest


TIMEOUT = 600

# Each base's oldest Python (its Requires-Python), as this test checks it.
OLDEST = [("8.2.0", "3.8"), ("9.2.0", "3.10")]

SESSION_TEST = """
def test_cache(pytestconfig):
    cache = pytestconfig.cache
    cache.set("fork/check", {"a": [1, 2]})
    assert cache.get("fork/check", None) == {"a": [1, 2]}
    assert cache.mkdir("fork-dir").is_dir()
"""


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` (``"3.8"``): on PATH, else under pyenv's root."""
    candidates = [shutil.which(f"python{version}") or ""]
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(
        glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", "python"))
    )
    for candidate in candidates:
        if not candidate:
            continue
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except OSError:
            continue  # A pyenv shim whose version is not selected, a broken link.
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


def python_or_skip(version: str) -> str:
    python = find_python(version)
    if python is None:
        reason = (
            f"no Python {version} found (python{version} on PATH, or ~/.pyenv/versions/{version}.*): "
            "cannot check the fork on that base's oldest Python"
        )
        unavailable(reason)
    return python


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("base", "version"), OLDEST, ids=[f"{b}-py{v}" for b, v in OLDEST]
)
def test_fork_builds_and_runs_on_the_oldest_python_of_its_base(
    clone: Path, tmp_path: Path, base: str, version: str
) -> None:
    python = python_or_skip(version)
    env_dir = tmp_path / "venv"
    made = run(python, "-m", "venv", str(env_dir))
    assert made.returncode == 0, made.stderr
    env_python = str(env_dir / "bin" / "python")
    # The long option: the short -C needs pip >= 23.1, newer than some bundled pips.
    install = run(
        env_python,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--config-settings",
        f"base={base}",
        str(clone),
    )
    assert install.returncode == 0, install.stdout + install.stderr

    check = run(
        env_python,
        "-c",
        "import sys, _pytest.cacheprovider as m, pytest\n"
        "compile(open(m.__file__, encoding='utf-8').read(), m.__file__, 'exec', dont_inherit=True)\n"
        "print('%d.%d' % sys.version_info[:2], pytest.__version__, m.__file__)\n",
    )
    assert check.returncode == 0, check.stderr
    found_version, fork_version, module = check.stdout.split()
    assert found_version == version
    assert fork_version.startswith(f"{base}+fork.")
    assert "site-packages" in module

    # The module merged on that Python is byte for byte the one this Python merges:
    # nothing in the merge (its isort sections included) depends on the interpreter.
    wheel_dir = tmp_path / "wheel"
    built = run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-cache-dir",
        "--config-settings",
        f"base={base}",
        "-w",
        str(wheel_dir),
        str(clone),
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheel_dir.glob("*.whl")
    assert wheel.name.startswith(f"pytest-{fork_version}-")
    with zipfile.ZipFile(wheel) as z:
        assert z.read("_pytest/cacheprovider.py") == Path(module).read_bytes()

    project = tmp_path / "project"
    project.mkdir()
    (project / "test_cache.py").write_text(SESSION_TEST, encoding="utf-8")
    session = run(env_python, "-m", "pytest", "-W", "error", cwd=project)
    assert session.returncode == 0, session.stdout + session.stderr
    assert "1 passed" in session.stdout
