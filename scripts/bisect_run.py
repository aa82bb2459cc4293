"""The ``git bisect run`` predicate, run from inside a pytest git work tree::

    git bisect run python /path/to/this/repo/scripts/bisect_run.py --scenario mkdir-race

See ``forktools.bisect``. Exit 0 good, 1 bad, 125 skip, 128 abort.
"""

from __future__ import annotations

import sys
import traceback


#: What ``git bisect run`` reads as "this commit cannot be judged".
SKIP = 125

try:
    from forktools.bisect import main
except Exception:  # noqa: BLE001  (a broken import must read as SKIP, never BAD)
    traceback.print_exc()
    print("bisect_run: the script itself failed; SKIP (never BAD)", file=sys.stderr)
    sys.exit(SKIP)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
