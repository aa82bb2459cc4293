"""Prepare pull requests and issue texts for pytest from our cache fixes.

    python scripts/export_upstream_pr.py PYTEST_CHECKOUT [--onto REF] [--release VERSION]
        [--issue SLUG=N] [--author 'NAME <EMAIL>'] [--co-authored-by 'NAME <EMAIL>']

One branch per fix, each off the ref alone, checked as pytest's pre-commit and
CI would check it; issue texts for the fixes to discuss first.  Nothing is
pushed.  The work is done by the ``export`` package next to this script.
"""

from __future__ import annotations

from pathlib import Path
import sys


SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent / "backend")]

from export.cli import main  # noqa: E402


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
