"""A claim of ``--cache-clear`` looks like an hour-old orphan to another session's sweep.

Fix: live-claims
Bug: -
Affects: the fork's ``--cache-clear`` and orphan sweep (layer orphan-sweep); not upstream
Needs: permissions, orphan-sweep
Replaces: _discard

``--cache-clear`` (and the sweep itself) claims what it deletes by renaming
it to a private name.  A rename keeps the claimed tree's own mtime, so a
``v/`` last written an hour ago became a private entry an hour old: the
sweep of a concurrent session took it for an orphan and removed it under the
claimer, whose deletion then failed with ENOENT and crashed the session at
configure.  A claim now is a new private directory, which is as young as the
claim itself, with the claimed entry moved into it.
"""

from __future__ import annotations


def _discard(path: Path, *, warn: bool) -> None:
    """Remove the file or tree at ``path`` without ever leaving it half-deleted.

    The claim: a new private directory of ours is made beside ``path``
    (fresh mtime, our owner id and pid in its name), and ``path`` is moved
    into it by one rename.  Of processes discarding the same path one rename
    succeeds and the others see ENOENT and leave it alone; no sweep takes a
    live claim for an orphan, since the claim is as young as the moment it
    was made.  The claim is then deleted; what a deletion cannot remove keeps
    the private name and is swept later (once its owner is dead or it is
    old).  ``warn`` reports failures of the deletion as upstream's ``rm_rf``
    does (for ``--cache-clear``).
    """
    if not os.path.lexists(path):
        return  # Nothing to claim: no need to create anything.
    claim = _make_private_dir(path.parent)
    try:
        path.rename(claim / path.name)
    except FileNotFoundError:  # ENOENT: gone, or claimed by another process.
        claim.rmdir()
        return
    except BaseException:
        claim.rmdir()
        raise
    if warn:
        rm_rf(claim)
    else:
        shutil.rmtree(claim, ignore_errors=True)
