"""``Cache.set`` writes in place: a concurrent ``get`` reads a torn value (#12410)."""

from __future__ import annotations

from export.material import IssueText


FIX = IssueText(
    slug="atomic-set",
    order=10,
    layer="atomic-set",
    title="Cache.get returns the default while another process runs Cache.set on the same key",
    text="""\
**Problem.** `Cache.set` truncates the value file and writes the new JSON in
place.  A `Cache.get` of the same key in another process (a second pytest
session on the same checkout, an IDE run beside a terminal run, a plugin
reading from a worker) can read the file empty or half written, and returns
the default as if the key had never been set.

**Reproducer.** Two processes on one cache directory: one calls
`cache.set("k", big_value)` in a loop, the other `cache.get("k", None)` in a
loop and counts `None`.  In a deterministic version the reader's `get` runs
while the writer is stopped between the truncate and the write.

**Measured on pytest 9.2.0** (2-core Linux VM, pytest-xdist 3.8.0,
2026-11-25 and 2026-12-02): 100 to 900 of about 2,000 `get` calls per 3 s
returned the default; with 64 workers and one concurrent reader, 131 to 306
torn reads per run; the forced interleaving returns the default on every
release from 8.1.1 to 9.2.0.  A full disk truncates `cache/lastfailed` to
invalid JSON when the new value is larger.

**Cost of the fix, measured.** Writing under a private name in the same
directory and renaming it over the old file is what `_write_pyc` already
does (`os.replace`, #10115).  In the kernel it costs more than the in-place
write: 14.4 µs of CPU against 7.5 µs per overwrite on tmpfs (raw `os` calls).
Written through `Path.open` as `set` writes today, with one JSON encoder
made once (`json.dumps` with options builds one per call, about 2 µs), a whole
`set` took 41.2 µs of CPU against 50.3 µs for 9.2.0's (overwrite, tmpfs;
41.2 against 42.2 on 8.2.0), and 8 system calls against 10.  A new value that
is an object, array or string (`lastfailed`, `nodeids`) needs no
rename at all: no prefix of one parses, so it can be created in place with
`open(..., "xb")` and a reader gets the default until it is whole, as it did
before the key existed: 42.5 µs against 53.9 and 5 system calls against 10.

**Proposed design.** Write `<name>.<random>` beside the value, `os.replace`
it over the value, remove it on any error; keep what the in-place write kept:
the file's mode (not the writer's umask), and write through a symlink instead
of replacing it.  Where the folder takes no new file but the value is
writable, write in place as today.  `set` still only warns, `get` still
returns the default for unreadable data.

**Earlier discussion.** #12410 proposed atomic writes and was closed: "This is
a false security", "Cache writes should happen on the controller", "Its still
a good idea to have atomic writes for multi pytest invocations", "Better wait
for a more concrete case then".  The concrete case is the multi-invocation
one: two sessions on one checkout, where no controller exists.  The cost
figures above answer the performance question.""",
)
