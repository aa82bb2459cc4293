"""Redundant writes: every session rewrites ``nodeids`` and ``stepwise`` with the same bytes.

Fix: skip-equal-writes
Bug: -
Affects: every release
Needs: atomic-set
Replaces: _write_atomic

A session that changes nothing still writes ``cache/nodeids`` (66 KB for
2,000 tests) and ``cache/stepwise`` again, byte for byte: two file writes,
and on a disk with ``discard`` two synchronous discards, per session.  A
value whose bytes are already in the file is not written at all.
"""

from __future__ import annotations


# Bytes read at a time when comparing a value file with the value being set.
_COMPARE_CHUNK = 1 << 20
# Values shorter than this are remembered by their hash (see _write_atomic);
# from this size on the file's size is compared first instead: a large value
# that changed (lastfailed) usually changed its length, and is then not read.
_SMALL = 1 << 16
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
# Per value file: the hash of the small value this process last wrote or
# found in it.
_LAST_BYTES: dict[str, int] = {}
_LAST_BYTES_MAX = 4096


def _holds(path: Path | str, raw: bytes) -> bool:
    """Whether the file at ``path`` holds exactly ``raw`` (False when it cannot be read).

    The file is read in bounded chunks and compared in place, so a large
    value (lastfailed of a million entries) is never held twice in memory;
    the first differing chunk ends the comparison, and a large file of
    another size is not read at all.
    """
    if _open_is_simulated():
        try:
            with Path(path).open("rb") as f:
                return f.read(len(raw) + 1) == raw
        except OSError:  # Whatever the simulated I/O raises: then write.
            return False
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:  # ENOENT (a new key), EACCES, EISDIR...: then write.
        return False
    try:
        size = len(raw)
        if size >= _SMALL and os.fstat(fd).st_size != size:
            return False
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


def _differs_for_sure(name: str, raw: bytes) -> bool:
    """Whether writing ``raw`` to the file ``name`` needs no comparison with the disk.

    True for a small value that differs from what this process last wrote
    there or found there: writing it cannot be redundant, except when another
    process happened to write the very same bytes meanwhile (then it is
    written again, which is harmless).  Otherwise the file is compared (a
    missing one costs the failed open that an existence check would cost).
    """
    if len(raw) >= _SMALL:
        return False
    known = _LAST_BYTES.get(name)
    return known is not None and known != hash(raw)


def _write_atomic(path: Path | str, data: str) -> None:
    """Replace the content of ``path`` with ``data`` in one step, unless it holds it already.

    Concurrency invariant: as for the plain atomic write, a reader sees a
    whole value, old or new.  A skipped write is one that happened just
    before the file's current content was written, so of concurrent writers
    the last one still wins; a skip needs the bytes on disk, read and
    compared, never a remembered state.  Merges (lastfailed, nodeids) call
    this with the merged value, so they skip exactly when the merge changes
    nothing.
    """
    raw = data.encode("UTF-8")
    name = os.fspath(path)
    if _differs_for_sure(name, raw) or not _holds(path, raw):
        _publish_bytes(path, raw)
    if len(raw) < _SMALL:
        if len(_LAST_BYTES) >= _LAST_BYTES_MAX:
            _LAST_BYTES.clear()
        _LAST_BYTES[name] = hash(raw)
