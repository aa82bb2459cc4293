"""Which pytest versions the matrix takes: final releases in range on the registry, plus ``fork``."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
import re
import sys

from forktools import envs
from forktools import proc


#: Oldest release in the default matrix (the last one before the 8.2.0 regression
#: series); the newest major included.
MIN_VERSION = (8, 1, 0)
MAX_MAJOR = 9
#: Seconds pip may take to list the releases.
REGISTRY_TIMEOUT = 180.0


class UsageError(Exception):
    """A command-line value that cannot be used."""


class RegistryError(Exception):
    """The list of pytest releases could not be read from the registry."""


def release_key(version: str) -> tuple[int, ...] | None:
    """The numeric key of a final release ("8.2.0"), None for anything else (rc, dev, local)."""
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        return None
    return tuple(int(part) for part in version.split("."))


def select_versions(
    available: Iterable[str],
    *,
    minimum: tuple[int, ...] = MIN_VERSION,
    max_major: int = MAX_MAJOR,
) -> list[str]:
    """Final releases from ``minimum`` to the newest ``max_major``.x, oldest first."""
    keyed = {}
    for version in available:
        key = release_key(version.strip())
        if key is not None and minimum <= key and key[0] <= max_major:
            keyed[key] = version.strip()
    return [keyed[key] for key in sorted(keyed)]


def parse_pip_index(output: str) -> list[str]:
    """The versions listed by ``pip index versions`` ("Available versions: a, b")."""
    for line in output.splitlines():
        if line.strip().startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
    raise RegistryError("no 'Available versions:' line in pip's answer")


def registry_versions(package: str = "pytest") -> list[str]:
    """Ask the registry (through pip, which skips yanked releases) for ``package``'s versions."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "index",
        "versions",
        package,
        "--disable-pip-version-check",
    ]
    done = proc.run(
        cmd, what=" ".join(cmd), timeout=REGISTRY_TIMEOUT, error=RegistryError
    )
    return parse_pip_index(done.stdout)


def default_versions() -> list[str]:
    """Every release in range on the registry, plus ``fork``."""
    versions = select_versions(registry_versions())
    if not versions:
        raise RegistryError("the registry lists no pytest release in range")
    return [*versions, envs.FORK]


def split_list(
    text: str, *, allowed: Sequence[str] | None = None, what: str
) -> list[str]:
    """Split a comma list, rejecting empty items and names outside ``allowed``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError(f"no {what} given")
    unknown = [item for item in items if allowed is not None and item not in allowed]
    if unknown:
        raise UsageError(
            f"unknown {what}: {', '.join(unknown)} (known: {', '.join(allowed or [])})"
        )
    return items


def validate_versions(versions: Sequence[str]) -> None:
    """Accept final or pre-release version strings and ``fork``; reject anything else."""
    bad = [
        v
        for v in versions
        if v != envs.FORK
        and not re.fullmatch(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.dev\d+)?", v)
    ]
    if bad:
        raise UsageError(f"not a pytest version: {', '.join(bad)}")
