"""Logs every umask change the process makes (pytest itself sets none)."""

from __future__ import annotations

import os


_real_umask = os.umask


def _logged_umask(mask: int) -> int:
    with open(os.path.join(os.path.dirname(__file__), "umask-calls"), "a") as log:
        log.write(f"{mask:o}\n")
    return _real_umask(mask)


os.umask = _logged_umask
