"""Mutation proof of every layer: ``python scripts/mutations.py`` (or ``tox run -e
mutations``); see ``forktools.mutations``."""

from __future__ import annotations

import sys

from forktools.mutations import main


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
