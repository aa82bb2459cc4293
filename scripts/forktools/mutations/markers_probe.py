"""Print the ``layer`` markers of the tests pytest collects from the arguments.

Run by the mutations tool with the interpreter of the env under test, in the
repository root: one line ``MARKERS=<json>``, junit test name -> the layers its
``layer`` markers name.
"""

from __future__ import annotations

import json
import sys

import pytest


class Markers:
    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            parts = item.nodeid.split("::")
            module = parts[0][:-3].replace("/", ".")
            key = ".".join([module, *parts[1:-1]]) + "::" + parts[-1]
            fixes = [m.args[0] for m in item.iter_markers("layer") if m.args]
            if fixes:
                self.found[key] = fixes


if __name__ == "__main__":
    markers = Markers()
    pytest.main(
        [*sys.argv[1:], "--collect-only", "-q", "-p", "no:cacheprovider"],
        plugins=[markers],
    )
    print("MARKERS=" + json.dumps(markers.found))
