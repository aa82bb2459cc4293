"""The benchmark, fork against stock: ``python scripts/bench.py`` (or ``tox run -e
bench``); see ``forktools.bench``."""

from __future__ import annotations

import sys

from forktools.bench import main


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
