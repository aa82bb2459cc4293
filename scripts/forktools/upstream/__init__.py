"""Run upstream pytest's own tests of a base release against an installed pytest.

Who runs it: tox (``upstream`` and ``upstream-full`` envs), CI and developers, after
installing the fork (or a stock release) into an environment.  It takes the
release's sdist from the registry (cached, never committed), extracts only
``testing/`` and the release's ``pyproject.toml`` (which carries the test
configuration) into a scratch directory, and runs pytest there with the given
interpreter, so ``_pytest`` is imported from that environment's site-packages.

As root, ``chmod`` cannot make a directory unwritable, so upstream's permission
tests would skip.  The run therefore drops the DAC capabilities with
``setpriv`` (still uid 0): those tests run instead of skipping.

    python scripts/upstream_tests.py                     # cacheprovider + stepwise
    python scripts/upstream_tests.py --full -- -n 2      # the whole upstream suite
    python scripts/upstream_tests.py --python .venv/bin/python --base 9.2.0
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

from forktools import proc
from forktools.envs import DROP_DAC


CACHE_ROOT = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "pytest-cache-overlay"
)
DEFAULT_FILES = ("testing/test_cacheprovider.py", "testing/test_stepwise.py")
# Counts of stock releases on the default files, measured with DAC capabilities
# dropped (so no permission test skips): what the fork must reproduce.
STOCK_COUNTS: dict[str, dict[str, int]] = {
    "8.2.0": {"passed": 70},
    "8.2.1": {"passed": 71},
    "8.2.2": {"passed": 71},
    "8.3.5": {"passed": 71},
    "8.4.2": {"passed": 75},
    "9.0.3": {"passed": 75},
    "9.1.1": {"passed": 76},
    "9.2.0": {"passed": 86},
}
SUMMARY = re.compile(
    r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|deselected)\b"
)


class UpstreamTestsError(Exception):
    """The run could not be set up (download, extraction, environment)."""


#: Seconds a download or a probe of the env may take; the test run itself has none.
STEP_TIMEOUT = 600.0


def installed_version(python: str) -> str:
    probe = "import importlib.metadata as m; print(m.version('pytest'))"
    done = proc.run(
        [python, "-c", probe],
        what="pytest's version",
        timeout=STEP_TIMEOUT,
        error=UpstreamTestsError,
    )
    return done.stdout.strip()


def sdist(base: str) -> Path:
    """Upstream's sdist of ``base``, downloaded once into the cache."""
    target = CACHE_ROOT / "sdists"
    found = sorted(target.glob(f"pytest-{base}.tar.gz"))
    if found:
        return found[0]
    target.mkdir(parents=True, exist_ok=True)
    print(f"downloading the sdist of pytest {base} ...", file=sys.stderr)
    result = proc.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(target),
            f"pytest=={base}",
        ],
        what="pip download",
        timeout=STEP_TIMEOUT,
        check=False,
        error=UpstreamTestsError,
    )
    found = sorted(target.glob(f"pytest-{base}.tar.gz"))
    if result.returncode != 0 or not found:
        raise UpstreamTestsError(
            f"could not download the sdist of pytest {base}:\n{result.stderr}"
        )
    return found[0]


def extract_tests(archive: Path, base: str, into: Path) -> Path:
    """Extract ``testing/`` and ``pyproject.toml`` of the sdist into ``into``."""
    top = f"pytest-{base}/"
    with tarfile.open(archive) as tf:
        members = [
            m
            for m in tf.getmembers()
            if m.name.startswith(top + "testing/") or m.name == top + "pyproject.toml"
        ]
        for m in members:
            m.name = m.name[len(top) :]
        tf.extractall(into, members=members, filter="data")
    if not (into / "testing").is_dir():
        raise UpstreamTestsError(f"{archive.name} has no testing/ folder")
    return into


def drop_dac_prefix(*, allow_skips: bool) -> tuple[str, ...]:
    if os.name != "posix" or os.geteuid() != 0:
        return ()
    if shutil.which("setpriv"):
        return DROP_DAC
    if allow_skips:
        print(
            "warning: root without setpriv: upstream's permission tests will skip",
            file=sys.stderr,
        )
        return ()
    raise UpstreamTestsError(
        "running as root needs setpriv (util-linux) to drop DAC capabilities"
    )


def counts(output: str) -> dict[str, int]:
    """Outcome counts from pytest's closing summary line."""
    lines = [
        line for line in output.splitlines() if line.startswith("=") and " in " in line
    ]
    if not lines:
        return {}
    return {
        kind.rstrip("s") if kind.startswith("error") else kind: int(n)
        for n, kind in SUMMARY.findall(lines[-1])
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter of the env under test"
    )
    parser.add_argument(
        "--base",
        help="upstream release whose tests to run (default: the installed one's base)",
    )
    parser.add_argument(
        "--full", action="store_true", help="run upstream's whole testing/ folder"
    )
    parser.add_argument(
        "--allow-skips",
        action="store_true",
        help="as root without setpriv, let permission tests skip",
    )
    parser.add_argument(
        "pytest_args", nargs="*", help="extra pytest arguments (after --)"
    )
    args = parser.parse_args(argv)

    try:
        version = installed_version(args.python)
        base = args.base or version.split("+")[0]
        prefix = drop_dac_prefix(allow_skips=args.allow_skips)
        with tempfile.TemporaryDirectory(prefix="upstream-tests-") as scratch:
            rundir = extract_tests(sdist(base), base, Path(scratch) / "run")
            basetemp = Path(scratch) / "basetemp"
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")
            }
            check = proc.run(
                [args.python, "-c", "import _pytest; print(_pytest.__file__)"],
                what="where _pytest imports from",
                timeout=STEP_TIMEOUT,
                cwd=rundir,
                env=env,
                error=UpstreamTestsError,
            )
            if Path(check.stdout.strip()).is_relative_to(rundir):
                raise UpstreamTestsError(
                    "_pytest would be imported from the test folder, not the env"
                )
            targets = ["testing"] if args.full else list(DEFAULT_FILES)
            cmd = [
                *prefix,
                args.python,
                "-m",
                "pytest",
                *targets,
                f"--basetemp={basetemp}",
                *args.pytest_args,
            ]
            print(
                f"pytest {version}: upstream {base} tests: {' '.join(cmd)}",
                file=sys.stderr,
            )
            result = subprocess.run(
                cmd, cwd=rundir, env=env, capture_output=True, text=True, check=False
            )
    except UpstreamTestsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(result.stdout[-20000:])
    sys.stderr.write(result.stderr[-5000:])
    seen = counts(result.stdout)
    print(f"upstream {base} tests against pytest {version}: {seen}")
    expected = STOCK_COUNTS.get(base)
    if (
        expected is not None
        and not args.full
        and not args.pytest_args
        and seen != expected
    ):
        print(f"error: stock pytest {base} gives {expected}", file=sys.stderr)
        return 1
    return result.returncode
