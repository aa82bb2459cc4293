"""Upstream pytest's own tests of a base release against the installed pytest:
``python scripts/upstream_tests.py`` (tox's ``upstream*`` envs); see ``forktools.upstream``."""

from __future__ import annotations

import sys

from forktools.upstream import main


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
