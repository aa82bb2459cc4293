"""Every scenario many times against one pytest: ``python scripts/stress.py`` (or
``tox run -e stress``); see ``forktools.stress``."""

from __future__ import annotations

import sys

from forktools.stress import main


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
