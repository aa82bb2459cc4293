"""Options of our test suite: ``--layer FIX`` runs only the tests that guard one layer."""

from __future__ import annotations

import pytest


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
