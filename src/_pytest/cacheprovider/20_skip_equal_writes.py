"""Redundant writes: every session rewrites ``nodeids`` and ``stepwise`` with the same bytes.

Fix: skip-equal-writes
Bug: -
Affects: every release
Needs: atomic-set
Replaces: _write_atomic

A session that changes nothing still writes ``cache/nodeids`` (66 KB for
2,000 tests) and ``cache/stepwise`` again, byte for byte: two file writes,
and on a disk with ``discard`` two synchronous discards, per session.  A
value whose bytes are already in the file is not written at all; comparing
costs a read of a file that the session has usually just read anyway.
"""

from __future__ import annotations


# Bytes read at a time when comparing a value file with the value being set.
_COMPARE_CHUNK = 1 << 20
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def _holds(path: Path, raw: bytes) -> bool:
    """Whether the file at ``path`` holds exactly ``raw`` (False when it cannot be read).

    The file is read in bounded chunks and compared in place, so a large
    value (lastfailed of a million entries) is never held twice in memory;
    the first differing chunk ends the comparison.
    """
    if _open_is_simulated():
        try:
            with path.open("rb") as f:
                return f.read(len(raw) + 1) == raw
        except OSError:  # Whatever the simulated I/O raises: then write.
            return False
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:  # ENOENT (a new key), EACCES, EISDIR...: then write.
        return False
    try:
        size = len(raw)
        offset = 0
        while True:
            chunk = os.read(fd, min(_COMPARE_CHUNK, size - offset + 1))
            if not chunk:
                return offset == size
            if not raw.startswith(chunk, offset):
                return False
            offset += len(chunk)
    except OSError:  # EIO, EISDIR on some systems: then write.
        return False
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: str) -> None:
    """Replace the content of ``path`` with ``data`` in one step, unless it holds it already.

    Concurrency invariant: as for the plain atomic write, a reader sees a
    whole value, old or new.  A skipped write is one that happened just
    before the file's current content was written: of concurrent writers the
    last one still wins, and a value already in place is never rewritten.
    Merges (lastfailed, nodeids) call this under their lock with the merged
    value, so they skip exactly when the merge changes nothing.
    """
    raw = data.encode("UTF-8")
    if not _holds(path, raw):
        _publish_bytes(path, raw)
