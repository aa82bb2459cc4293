"""The maintainer's tools: one job per module, one package per tool.

Shared pieces: ``proc`` (a subprocess with a time limit and the tail of its
output), ``envs`` (cached virtual envs with one pytest each), ``report`` (tables
and progress lines). Tools, each with ``main(argv) -> int`` and a thin entry
script in ``scripts/``: ``scenarios`` (the races, and the projects they run),
``matrix``, ``stress``, ``bisect``, ``bench``, ``mutations``, ``upstream``.

``scenarios``, ``proc`` and ``envs`` also run on the oldest Python our tests use
(3.8: the race tests import them in the env under test), so they use the
standard library only.
"""

from __future__ import annotations

from pathlib import Path
import sys


REPO_ROOT = Path(__file__).resolve().parent.parent.parent

# backend/ is the build's backend-path, never installed: the tools that read the
# layer series import its modules by name, as the build itself does.
if str(REPO_ROOT / "backend") not in sys.path:
    sys.path.append(str(REPO_ROOT / "backend"))
