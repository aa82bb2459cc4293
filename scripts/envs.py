"""Cached pytest envs, by their old name: they live in ``forktools.envs``.

Tests and the export import ``envs`` (``DROP_DAC``, ``XDIST_VERSION``,
``ensure_env``) with ``scripts/`` on the path; by hand,
``python scripts/envs.py 8.2.0 fork`` prints each env's interpreter.
"""

from __future__ import annotations

import sys

from forktools.envs import DROP_DAC
from forktools.envs import ensure_env
from forktools.envs import EnvError
from forktools.envs import main


__all__ = ["DROP_DAC", "XDIST_VERSION", "EnvError", "ensure_env"]
from forktools.envs import XDIST_VERSION


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
