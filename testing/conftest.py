"""Options and shared fixtures of our test suite: ``--layer FIX`` runs only the tests
that guard one layer; ``clone`` is a fresh clone of this checkout."""

from __future__ import annotations

from pathlib import Path
import subprocess

from race_harness import unavailable

import pytest


ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--layer",
        action="append",
        default=[],
        metavar="FIX",
        help="run only the tests marked @pytest.mark.layer(FIX) (repeatable)",
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    wanted = set(config.getoption("layer"))
    if not wanted:
        return
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        fixes = {m.args[0] for m in item.iter_markers("layer") if m.args}
        (selected if fixes & wanted else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture(scope="session")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of this checkout's committed state, as a new user gets it."""
    if not (ROOT / ".git").exists():
        unavailable("not a git checkout")
    target = tmp_path_factory.mktemp("clone") / "repo"
    subprocess.run(
        ["git", "clone", "--quiet", str(ROOT), str(target)], check=True, timeout=120
    )
    return target
