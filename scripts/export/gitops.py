"""Git on the pytest checkout: reading the ref, writing commits without touching the work tree.

Also makes a git repository of a release's source distribution, for when the
checkout is older than the newest release.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile


GIT_TIMEOUT = 120.0
DOWNLOAD_TIMEOUT = 600.0


class ExportError(Exception):
    """The export cannot go on; the message says why and what to do."""


def quoted(command: Sequence[object]) -> str:
    return " ".join(str(part) for part in command)


def git(
    checkout: Path,
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run git in ``checkout`` and return its stdout; ExportError with git's message if it fails."""
    command = ["git", "-C", str(checkout), *args]
    try:
        done = subprocess.run(
            command,
            check=False,
            input=stdin,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            env=dict(env or os.environ),
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ExportError(f"{quoted(command)} failed: {e}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise ExportError(f"{quoted(command)} failed: {message}")
    return done.stdout.decode("utf-8", errors="replace")


def require_checkout(checkout: Path) -> None:
    if not (checkout / ".git").exists():
        raise ExportError(f"{checkout} is not a git checkout (no .git)")


def resolve_commit(checkout: Path, ref: str) -> str:
    try:
        return git(
            checkout, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"
        ).strip()
    except ExportError:
        raise ExportError(
            f"{ref!r} is not a commit in {checkout} (fetch it, with tags, first)"
        ) from None


def nearest_tag(checkout: Path, commit: str) -> str | None:
    """The nearest release tag reachable from ``commit`` (``git describe``), if any."""
    try:
        return git(
            checkout, "describe", "--tags", "--abbrev=0", "--match", "[0-9]*", commit
        ).strip()
    except ExportError:
        return None


def show(checkout: Path, commit: str, path: str) -> str | None:
    """``path`` at ``commit``, or None where it does not exist."""
    try:
        return git(checkout, "show", f"{commit}:{path}")
    except ExportError:
        return None


def branch_exists(checkout: Path, branch: str) -> bool:
    try:
        git(checkout, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    except ExportError:
        return False
    return True


#: Who commits a branch where git knows nobody (a fresh HOME, as on CI); the
#: person who submits it commits it anew under their own name.
NOBODY = ("pytest export", "export@localhost")


def has_identity(checkout: Path) -> bool:
    """Whether git can name an author and committer in ``checkout``."""
    try:
        git(checkout, "var", "GIT_AUTHOR_IDENT")
        git(checkout, "var", "GIT_COMMITTER_IDENT")
    except ExportError:
        return False
    return True


def ref_slug(ref: str) -> str:
    """``ref`` as a part of a branch name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", ref).strip("-.")


def write_commit(
    checkout: Path,
    parent: str,
    files: Mapping[str, bytes],
    message: str,
    *,
    author: tuple[str, str] | None = None,
) -> str:
    """A commit of ``parent`` plus ``files``, made in a private index: the work tree is untouched."""
    with tempfile.TemporaryDirectory(prefix="pytest-export-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(checkout, "read-tree", parent, env=env)
        for path, data in sorted(files.items()):
            listed = git(checkout, "ls-tree", parent, "--", path).split()
            mode = listed[0] if listed else "100644"
            blob = git(
                checkout, "hash-object", "-w", "--stdin", f"--path={path}", stdin=data
            ).strip()
            git(
                checkout,
                "update-index",
                "--add",
                "--cacheinfo",
                f"{mode},{blob},{path}",
                env=env,
            )
        tree = git(checkout, "write-tree", env=env).strip()
    env = dict(os.environ)
    if author is None and not has_identity(checkout):
        author = NOBODY
    if author is not None:
        name, email = author
        env.update(GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email)
        env.update(GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email)
    return git(
        checkout,
        "commit-tree",
        tree,
        "-p",
        parent,
        "-F",
        "-",
        stdin=message.encode(),
        env=env,
    ).strip()


def changed_paths(checkout: Path, old: str, new: str) -> list[str]:
    out = git(checkout, "diff", "--no-renames", "--name-only", old, new)
    return [line for line in out.splitlines() if line]


def numstat(checkout: Path, old: str, new: str, path: str) -> tuple[int, int]:
    out = git(checkout, "diff", "--numstat", "--no-renames", old, new, "--", path)
    fields = out.split()
    return (int(fields[0]), int(fields[1])) if fields else (0, 0)


def added_lines(checkout: Path, old: str, new: str) -> dict[str, list[str]]:
    """The lines each file of the diff adds, by path."""
    diff = git(checkout, "diff", "-U0", "--no-renames", old, new)
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in diff.splitlines():
        if line.startswith("+++ "):
            current = found.setdefault(line[6:] if line[4:6] == "b/" else line[4:], [])
        elif line.startswith("+") and not line.startswith("+++"):
            current.append(line[1:])
    return found


def extract(checkout: Path, commit: str, dest: Path) -> Path:
    """The tree of ``commit`` written to ``dest`` (``git archive``)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest.parent / f"{dest.name}.tar"
    git(checkout, "archive", "--format=tar", f"--output={archive}", commit)
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="data")
    archive.unlink()
    return dest


def repo_from_sdist(version: str, dest: Path) -> Path:
    """A git repository of pytest ``version``'s sdist from the package index, tagged ``version``.

    The sdist has no history: the branches made on it are for checking the
    fixes against that release's code, and are rebased onto ``main`` to submit.
    """
    if (dest / ".git").exists():
        return dest
    with tempfile.TemporaryDirectory(prefix="pytest-export-sdist-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"pytest=={version}",
            "-d",
            tmp,
        ]
        done = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            timeout=DOWNLOAD_TIMEOUT,
        )
        archives = sorted(Path(tmp).glob("pytest-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise ExportError(
                f"{quoted(command)} failed: {(done.stdout + done.stderr).strip()[-2000:]}"
            )
        with tarfile.open(archives[0]) as tf:
            tf.extractall(tmp, filter="data")
        top = Path(tmp) / f"pytest-{version}"
        shutil.copytree(top, dest)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "pytest sdist",
        "GIT_AUTHOR_EMAIL": "sdist@localhost",
        "GIT_COMMITTER_NAME": "pytest sdist",
        "GIT_COMMITTER_EMAIL": "sdist@localhost",
    }
    git(dest, "init", "--quiet", "--initial-branch=main")
    git(dest, "add", "--all", env=env)
    git(dest, "commit", "--quiet", "-m", f"pytest {version} (sdist)", env=env)
    git(dest, "tag", version)
    return dest
