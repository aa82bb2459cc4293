"""The verdict table: ``python scripts/matrix.py`` (or ``tox run -e matrix``); see ``forktools.matrix``."""

from __future__ import annotations

import sys

from forktools.matrix import main


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
