"""Export our cache fixes as local pull-request branches on a pytest git checkout.

Who runs it, when: a maintainer of this fork, by hand, when the overlay is ready
to be proposed upstream (and to see whether it still fits upstream's ``main``).
It never pushes.  Upstream accepts no unattended agent output: the branch is a
draft that a human reviews, rewords where needed (``git commit --amend``), adds
their name to ``AUTHORS`` on, and pushes to their own fork.

    python scripts/export_upstream_pr.py ~/src/pytest                  # one commit onto main
    python scripts/export_upstream_pr.py ~/src/pytest --series         # a branch per layer
    python scripts/export_upstream_pr.py ~/src/pytest --onto 8.2.0 --skip-checks

Steps 1 and 2 stop the export with a non-zero exit when they fail; a failing
check of step 3 is reported, and the exit is non-zero:

1. Refuse a dirty work tree or an existing branch; resolve ``--onto`` (default
   ``main``) and pick the recorded base (``backend/bases.json``) whose reviewed
   fingerprints match upstream's ``src/_pytest/cacheprovider.py`` at that ref,
   trying the nearest tag (``git describe``) first.  When none fits, name the
   definitions that diverged: the overlay must be adapted, because merging it
   anyway would silently revert upstream's changes to them.
2. Build the series of commits, one per layer (see ``plan_series``), without
   touching the work tree (a temporary git index): the module as the build merges
   layers 1..k, the tests marked for those layers merged into upstream's
   ``testing/test_cacheprovider.py``, their changelog fragments.  By default the
   series is squashed into one commit off the ref, with one message in upstream's
   shape (summary, why, each fix, test plan, ``closes #NNNN``); with ``--series``
   each layer becomes a branch of its own, stacked.  Check that they touch only
   ``ALLOWED_PATHS``, then create the branches (the squashed one is checked
   out; the series leaves the work tree where it was).
3. Unless ``--skip-checks``: upstream's ruff (the version its pre-commit pins,
   with its config) on the changed files, mypy (likewise) on them, and upstream's
   ``testing/test_cacheprovider.py`` and ``testing/test_stepwise.py`` plus the
   exported tests against each commit installed into a private venv.  Then print
   what each branch changes and how its checks went.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
import contextlib
import dataclasses
import functools
import io
import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import tomllib


REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "backend"))

import libcst as cst  # noqa: E402

from envs import DROP_DAC  # noqa: E402
from envs import XDIST_VERSION  # noqa: E402
import layers  # noqa: E402
import overlay_backend  # noqa: E402
import overlay_merge  # noqa: E402


#: The module we change, in upstream's layout.
MODULE_PATH = "src/_pytest/cacheprovider.py"
#: Our overlay: one layer per fix (``backend/layers.py``).
LAYERS_PATH = "src/_pytest/cacheprovider"
BASES_PATH = "backend/bases.json"
#: What the exported diff may touch: exact paths, then folder prefixes.
ALLOWED_PATHS = (MODULE_PATH, "AUTHORS")
ALLOWED_PREFIXES = ("testing/", "changelog/")
DEFAULT_REF = "main"
BRANCH_TEMPLATE = "cache-races-{ref}"
#: A changelog fragment: ``<issue>.<type>.rst`` or ``<issue>.<type>.<n>.rst``, or an
#: orphan ``+<name>.<type>.rst`` (towncrier's name for a change without an issue).
#: Upstream wants the pull request's number for those: see ``--pr-number``.
FRAGMENT_NAME = re.compile(
    r"^(?P<issue>\d+|\+[\w-]+)\.(?P<type>[a-z]+)(?:\.(?P<n>\d+))?\.rst$"
)
#: Upstream's fragment types when its pyproject does not list them (towncrier's config).
DEFAULT_FRAGMENT_TYPES = frozenset(
    {
        "feature",
        "improvement",
        "bugfix",
        "doc",
        "deprecation",
        "breaking",
        "vendor",
        "packaging",
        "contrib",
        "misc",
    }
)
#: Seconds each kind of command may take (2 shared cores, cold caches).
GIT_TIMEOUT = 120.0
INSTALL_TIMEOUT = 900.0
LINT_TIMEOUT = 600.0
TEST_TIMEOUT = 1800.0
#: Lines of a failing command's output shown in the report.
OUTPUT_TAIL = 60
# Upstream's tests run with the DAC capabilities dropped when root (envs.DROP_DAC),
# so its permission tests run instead of skipping (``chmod`` does not bind root).
#: Environment variables that would change how the checks run.
SCRUBBED_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
)

#: Commit message body width, as git's own tools assume.
MESSAGE_WIDTH = 72
COMMIT_SUMMARY = "cacheprovider: make the cache safe for concurrent processes"

COMMIT_WHY = """\
Several processes share one cache directory: xdist workers, and pytest sessions
started at once on one checkout.  The race to create the directory is handled
since #12381 and #12580, the others are not: `Cache.set` truncates a value file
in place, so a concurrent `get` can read a partly written value and return the
default; `--cache-clear` runs again in a worker that xdist starts late and wipes
what the other workers wrote (#6670); a process killed between creating its
temporary directory and renaming it leaves that directory behind for good;
overlapping sessions overwrite each other's `lastfailed` entries (#6423); and
the directory's permissions are computed by flipping the process-wide umask
(#12308).

The cache dir and every value file are now written under a private name and
published with a single rename; `--cache-clear` runs once, in the process that
owns the run; `cache/lastfailed` and `cache/nodeids` are merged into what is on
disk under a lock; and a later session sweeps private entries left by a killed
process.  `Cache.set` still only warns and `Cache.get` still returns the default
on unreadable data."""


NO_BASE_ADVICE = """\
Nothing was exported: merging the overlay into this code would silently revert
upstream's changes to the definitions above.  Adapt the overlay to this upstream
code, review the merge, and record a base for it in backend/bases.json
(python backend/overlay_backend.py merged BASE UPSTREAM.py prints its fingerprints)."""

NEXT_STEPS = """\
Next: review the branch (git -C {checkout} show {branch}), reword the message in your
own words if needed (git commit --amend), add yourself to AUTHORS, then push it to
your fork and open the pull request against {ref}.  Nothing was pushed."""

ORPHANS_HINT = """\
Changelog fragments without an issue number: {orphans}.  Upstream names them after
the pull request: rename them to <PR>.<type>.rst once it has a number (or export
again with --pr-number)."""

FAILED_BRANCH_HINT = """\
The branch {branch} was created and is checked out; to retry, switch back and
delete it: git -C {checkout} checkout - && git -C {checkout} branch -D {branch}"""


class ExportError(Exception):
    """The export cannot go on; the message says why and what to do."""


class NoMatchingBase(ExportError):
    """No recorded base's reviewed fingerprints match upstream's module at the ref."""


class CheckFailed(ExportError):
    """A command run to check the exported branch failed."""

    def __init__(
        self, command: Sequence[str], cwd: Path, returncode: int | None, output: str
    ) -> None:
        tail = "\n".join(output.rstrip().splitlines()[-OUTPUT_TAIL:])
        status = "timed out" if returncode is None else f"exited with {returncode}"
        super().__init__(
            f"check failed: {_quoted(command)} (in {cwd}) {status}\n{tail}"
        )
        self.output = output


@dataclasses.dataclass(frozen=True)
class BaseChoice:
    """The recorded base whose overlay variant fits the ref, and the merge it gave."""

    base: str
    result: overlay_merge.MergeResult


def _progress(message: str) -> None:
    print(f"export: {message}", file=sys.stderr, flush=True)


def _quoted(command: Sequence[str]) -> str:
    return " ".join(str(part) for part in command)


# --- git -------------------------------------------------------------------------------


def _git(
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
        raise ExportError(f"{_quoted(command)} failed: {e}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise ExportError(f"{_quoted(command)} failed: {message}")
    return done.stdout.decode("utf-8", errors="replace")


def require_clean_checkout(checkout: Path) -> None:
    """Refuse a checkout with changes or untracked files: the export switches branches."""
    if not (checkout / ".git").exists():
        raise ExportError(f"{checkout} is not a git checkout (no .git)")
    status = _git(checkout, "status", "--porcelain", "--untracked-files=normal")
    if status.strip():
        listed = "\n  ".join(status.rstrip().splitlines()[:20])
        raise ExportError(
            f"the work tree of {checkout} is dirty; commit or stash first:\n  {listed}"
        )


def resolve_commit(checkout: Path, ref: str) -> str:
    try:
        return _git(
            checkout, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"
        ).strip()
    except ExportError:
        raise ExportError(
            f"{ref!r} is not a commit in {checkout} (fetch it, with tags, first)"
        ) from None


def nearest_tag(checkout: Path, commit: str) -> str | None:
    """The nearest release tag reachable from ``commit`` (``git describe``), if any."""
    try:
        return _git(
            checkout, "describe", "--tags", "--abbrev=0", "--match", "[0-9]*", commit
        ).strip()
    except ExportError:
        return None


def ref_slug(ref: str) -> str:
    """``ref`` as a part of a branch name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", ref).strip("-.")


def branch_name(ref: str) -> str:
    return BRANCH_TEMPLATE.format(ref=ref_slug(ref))


def require_new_branch(checkout: Path, branch: str) -> None:
    try:
        _git(checkout, "check-ref-format", "--branch", branch)
    except ExportError:
        raise ExportError(f"{branch!r} is not a valid branch name") from None
    try:
        _git(checkout, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    except ExportError:
        return
    raise ExportError(
        f"branch {branch!r} already exists in {checkout}; pass --branch or delete it"
    )


def write_commit(
    checkout: Path, parent: str, files: Mapping[str, bytes], message: str
) -> str:
    """A commit of ``parent`` plus ``files``, made in a private index: the work tree is untouched."""
    with tempfile.TemporaryDirectory(prefix="pytest-export-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(checkout, "read-tree", parent, env=env)
        for path, data in sorted(files.items()):
            listed = _git(checkout, "ls-tree", parent, "--", path).split()
            mode = listed[0] if listed else "100644"
            blob = _git(
                checkout, "hash-object", "-w", "--stdin", f"--path={path}", stdin=data
            ).strip()
            _git(
                checkout,
                "update-index",
                "--add",
                "--cacheinfo",
                f"{mode},{blob},{path}",
                env=env,
            )
        tree = _git(checkout, "write-tree", env=env).strip()
    return _git(
        checkout, "commit-tree", tree, "-p", parent, "-F", "-", stdin=message.encode()
    ).strip()


def changed_paths(checkout: Path, old: str, new: str) -> list[str]:
    return _git(checkout, "diff", "--no-renames", "--name-only", old, new).split("\n")[
        :-1
    ]


def disallowed_paths(paths: Sequence[str]) -> list[str]:
    """The paths outside ``ALLOWED_PATHS`` and ``ALLOWED_PREFIXES``."""
    return [
        p
        for p in paths
        if p not in ALLOWED_PATHS and not p.startswith(ALLOWED_PREFIXES)
    ]


# --- choosing the base ------------------------------------------------------------------


def release_tuple(version: str) -> tuple[int, int, int] | None:
    """``(major, minor, micro)`` of a release or pre-release tag like ``9.2.0.dev0``."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        return None
    return (int(match[1]), int(match[2]), int(match[3] or 0))


def candidate_bases(bases: Sequence[str], tag: str | None) -> list[str]:
    """``bases`` in the order to try: the tag's release, then older ones nearest first, then newer."""
    target = release_tuple(tag) if tag else None
    if target is None:
        return sorted(bases, key=lambda b: release_tuple(b) or (0, 0, 0), reverse=True)

    def key(base: str) -> tuple[bool, tuple[int, ...]]:
        version = release_tuple(base) or (0, 0, 0)
        if version <= target:
            return (False, tuple(-part for part in version))
        return (True, version)

    return sorted(bases, key=key)


def diverged_definitions(
    upstream: Mapping[str, str], entry: Mapping[str, object], adds: Sequence[str]
) -> list[str]:
    """What in upstream's module no longer is what the base ``entry`` was reviewed against.

    Definitions on the base's ``keep`` list (a list or a name-to-fingerprint map)
    are upstream's own by design and are not reported as newly defined upstream.
    """
    replaces = entry.get("replaces", {})
    keep = entry.get("keep", [])
    assert isinstance(replaces, dict)
    assert isinstance(keep, (list, dict))
    problems: list[str] = []
    also_reviewed = entry.get("also_reviewed", {})
    assert isinstance(also_reviewed, dict)
    for name, recorded in sorted(replaces.items()):
        actual = upstream.get(name)
        if actual is None:
            problems.append(f"{name}: no longer defined upstream")
        elif actual != recorded and actual not in also_reviewed.get(name, {}):
            problems.append(
                f"{name}: changed upstream (fingerprint {actual}, reviewed {recorded})"
            )
    for name in sorted(set(adds) - set(keep)):
        if name in upstream:
            problems.append(
                f"{name}: now defined upstream, the overlay's would replace it"
            )
    return problems


@contextlib.contextmanager
def _backend_reading(source_root: Path) -> Iterator[None]:
    """Point the build backend at the layers and bases file of ``source_root``.

    ``overlay_backend`` reads them from module constants; tests export from a
    small synthetic fork, so the constants are swapped for the call and restored.
    """
    saved = overlay_backend.LAYERS_DIR, overlay_backend.BASES_FILE
    overlay_backend.LAYERS_DIR = source_root / LAYERS_PATH
    overlay_backend.BASES_FILE = source_root / BASES_PATH
    try:
        yield
    finally:
        overlay_backend.LAYERS_DIR, overlay_backend.BASES_FILE = saved


def overlay_adds(base: str, entry: Mapping[str, object]) -> list[str]:
    """What the layers selected for ``base`` add to upstream's module (read off the layers).

    Every definition of the combined overlay that the base neither records as
    replaced nor keeps; classes merged member by member count by their members.
    """
    selection = overlay_backend._selection(base, None)
    overlay, _ = overlay_backend._overlay_for(base, selection)
    defined = overlay_merge.definition_fingerprints(overlay)
    replaces = entry.get("replaces", {})
    keep = entry.get("keep", {})
    assert isinstance(replaces, dict) and isinstance(keep, (list, dict))
    classes = {name.split(".")[0] for name in defined if "." in name}
    return sorted(
        name
        for name in defined
        if name not in replaces and name not in keep and name not in classes
    )


def choose_base(
    upstream_source: str, source_root: Path, tag: str | None, where: str
) -> BaseChoice:
    """The first recorded base, nearest to ``tag`` first, whose merge passes its fingerprint check."""
    with (source_root / BASES_PATH).open(encoding="utf-8") as f:
        bases: dict[str, dict[str, object]] = json.load(f)["bases"]
    order = candidate_bases(list(bases), tag)
    if not order:
        raise ExportError(f"{source_root / BASES_PATH} records no base")
    failures: dict[str, str] = {}
    with _backend_reading(source_root):
        for base in order:
            try:
                result = overlay_backend.merged_module(base, upstream_source)
            except overlay_backend.BuildError as e:
                failures[base] = str(e)
                _progress(f"base {base} does not fit {where}")
                continue
            return BaseChoice(base=base, result=result)

    upstream = overlay_merge.definition_fingerprints(upstream_source)
    with _backend_reading(source_root):
        adds = {base: overlay_adds(base, bases[base]) for base in order}
    nearest = order[0]
    lines = [
        f"no recorded base fits {MODULE_PATH} at {where} (nearest tag: {tag or 'none'}): the overlay must be adapted.",
        f"Diverged from base {nearest} (the nearest):",
    ]
    lines += [
        f"  {p}" for p in diverged_definitions(upstream, bases[nearest], adds[nearest])
    ] or ["  (no fingerprint differs)"]
    lines += [
        "The merge said:",
        *(f"  {line}" for line in failures[nearest].splitlines()),
    ]
    for base in order[1:]:
        names = [
            p.split(":")[0]
            for p in diverged_definitions(upstream, bases[base], adds[base])
        ]
        lines.append(
            f"Base {base}: {', '.join(names) or failures[base].splitlines()[0]}"
        )
    lines.append(NO_BASE_ADVICE)
    raise NoMatchingBase("\n".join(lines))


# --- what the commit carries ------------------------------------------------------------


def fragment_types(pyproject: str) -> frozenset[str]:
    """The changelog fragment types upstream's towncrier config accepts."""
    try:
        types = (
            tomllib.loads(pyproject)
            .get("tool", {})
            .get("towncrier", {})
            .get("type", [])
        )
    except tomllib.TOMLDecodeError:
        types = []
    names = frozenset(
        t["directory"] for t in types if isinstance(t, dict) and "directory" in t
    )
    return names or DEFAULT_FRAGMENT_TYPES


def collect_fragments(
    source_root: Path, allowed_types: frozenset[str]
) -> dict[str, str]:
    """Our changelog fragments by file name.

    Names that start with a digit or ``+`` must be well-formed fragment names;
    others (``README.rst``, ``_template.rst``) are not fragments.
    """
    folder = source_root / "changelog"
    fragments: dict[str, str] = {}
    for path in sorted(folder.glob("*.rst")) if folder.is_dir() else []:
        if not (path.name[:1].isdigit() or path.name.startswith("+")):
            continue
        match = FRAGMENT_NAME.match(path.name)
        if match is None:
            raise ExportError(
                f"changelog fragment {path.name!r} is not named <issue>.<type>.rst "
                "or +<name>.<type>.rst"
            )
        if match["type"] not in allowed_types:
            raise ExportError(
                f"changelog fragment {path.name!r} has type {match['type']!r}; "
                f"upstream accepts {', '.join(sorted(allowed_types))}"
            )
        fragments[path.name] = path.read_text(encoding="utf-8")
    if not fragments:
        raise ExportError(
            f"no changelog fragments in {folder}: an upstream PR needs one"
        )
    return fragments


def upstream_fragment_names(
    names: Sequence[str], pr_number: int | None
) -> dict[str, str]:
    """Our fragment name -> its name upstream.

    Numbered fragments keep their names.  Orphans (``+name.type.rst``) become
    ``<pr_number>.<type>.rst`` when the pull request's number is known, with
    ``.1``, ``.2`` suffixes when several share a type, as upstream numbers them.
    """
    mapping = {name: name for name in names}
    if pr_number is None:
        return mapping
    by_type: dict[str, list[str]] = {}
    for name in sorted(names):
        match = FRAGMENT_NAME.match(name)
        if match is not None and match["issue"].startswith("+"):
            by_type.setdefault(match["type"], []).append(name)
    for kind, orphans in by_type.items():
        for index, name in enumerate(orphans, start=1):
            suffix = f".{index}" if len(orphans) > 1 else ""
            mapping[name] = f"{pr_number}.{kind}{suffix}.rst"
    clashes = sorted(
        {n for n in mapping.values() if list(mapping.values()).count(n) > 1}
    )
    if clashes:
        raise ExportError(
            f"two fragments would both be named {', '.join(clashes)} upstream"
        )
    return mapping


# --- checks -----------------------------------------------------------------------------


def _check_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(
        PYTHONDONTWRITEBYTECODE="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        **extra,
    )
    return env


def run_command(
    command: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing stdout and stderr apart; CheckFailed only if it cannot finish."""
    try:
        return subprocess.run(
            list(command),
            check=False,
            cwd=cwd,
            env=dict(env or _check_env()),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = (
            e.output.decode(errors="replace")
            if isinstance(e.output, bytes)
            else e.output or ""
        )
        raise CheckFailed(command, cwd, None, out) from None
    except OSError as e:
        raise CheckFailed(command, cwd, 127, str(e)) from None


def run_check(
    command: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run one check command; its output, or CheckFailed naming the command."""
    done = run_command(command, cwd=cwd, timeout=timeout, env=env)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise CheckFailed(command, cwd, done.returncode, output)
    return output


def precommit_pins(config: str) -> dict[str, list[str]]:
    """Requirements for ruff and mypy at the versions upstream's pre-commit config pins.

    A small reader for the two hooks (no YAML parser needed): the ``rev`` of the
    ``ruff-pre-commit`` and ``mirrors-mypy`` repos, and mypy's ``additional_dependencies``.
    """
    pins: dict[str, list[str]] = {}
    for tool, repo in (("ruff", "ruff-pre-commit"), ("mypy", "mirrors-mypy")):
        match = re.search(
            rf"repo:\s*\S*/{repo}\s*\n\s*rev:\s*[\"']?v?([0-9][\w.]*)", config
        )
        if match:
            pins[tool] = [f"{tool}=={match[1]}"]
    if "mypy" in pins:
        after = config[config.index("mirrors-mypy") :]
        deps = re.search(
            r"^( *)additional_dependencies:\s*\n((?:\1 +(?:- .*|#.*)\n)+)",
            after,
            re.MULTILINE,
        )
        if deps:
            for line in deps[2].splitlines():
                item = line.strip()
                if item.startswith("- "):
                    pins["mypy"].append(item[2:].strip().strip("\"'"))
    return pins


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / "python"


def summary_line(output: str) -> str:
    """The final ``== 54 passed, 2 skipped in 3.1s ==`` line, without the bars."""
    for line in reversed(output.splitlines()):
        match = re.match(r"^=+ (.+ in [\d.]+s.*?) =+$", line.strip())
        if match:
            return match[1]
    return "(no summary line)"


def added_lines(checkout: Path, old: str, new: str, path: str) -> set[int]:
    """Line numbers of ``path`` in ``new`` that the diff from ``old`` adds or changes."""
    lines: set[int] = set()
    diff = _git(checkout, "diff", "-U0", "--no-renames", old, new, "--", path)
    for match in re.finditer(r"^@@ -\S+ \+(\d+)(?:,(\d+))? @@", diff, re.MULTILINE):
        start, count = int(match[1]), int(match[2] if match[2] is not None else 1)
        lines.update(range(start, start + count))
    return lines


def _pip_install(python: Path, requirements: Sequence[str], *, cwd: Path) -> str | None:
    """Install into the venv; None on success, else pip's last error line."""
    done = run_command(
        [str(python), "-m", "pip", "install", *requirements],
        cwd=cwd,
        timeout=INSTALL_TIMEOUT,
    )
    if done.returncode == 0:
        return None
    errors = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.startswith("ERROR")
    ]
    return errors[-1] if errors else f"pip exited with {done.returncode}"


def install_linters(python: Path, checkout: Path) -> dict[str, Path | None]:
    """Ruff and mypy in the venv at the versions upstream's pre-commit pins, with mypy's extra deps.

    An extra dependency that is no longer installable (a yanked stub package) is
    skipped with a warning; a tool that cannot be installed at all falls back to
    one on PATH, or to None (its check is then reported as skipped).
    """
    config_path = checkout / ".pre-commit-config.yaml"
    pins = (
        precommit_pins(config_path.read_text(encoding="utf-8"))
        if config_path.is_file()
        else {}
    )
    tools: dict[str, Path | None] = {}
    for tool in ("ruff", "mypy"):
        pin, *extras = pins.get(tool, [tool])
        _progress(f"installing {pin}")
        error = _pip_install(python, [pin], cwd=checkout)
        if error is not None:
            fallback = shutil.which(tool)
            _progress(
                f"WARNING: cannot install {pin} ({error}); using {fallback or 'none'}"
            )
            tools[tool] = Path(fallback) if fallback else None
            continue
        tools[tool] = python.parent / tool
        if extras and _pip_install(python, extras, cwd=checkout) is not None:
            for extra in extras:
                error = _pip_install(python, [extra], cwd=checkout)
                if error is not None:
                    _progress(
                        f"WARNING: skipping {tool}'s extra dependency {extra} ({error})"
                    )
    return tools


def _ruff_check(
    ruff: Path, checkout: Path, files: Sequence[str], ours: Mapping[str, set[int]]
) -> str:
    """``ruff check`` with upstream's config; findings split into the export's lines and upstream's.

    A finding in a line the export did not write is upstream code that our change
    made the linter see differently (typically: the merge added
    ``from __future__ import annotations`` and pyupgrade now flags old annotations).
    """
    command = [
        str(ruff),
        "check",
        "--no-fix",
        "--no-cache",
        "--output-format=json",
        *files,
    ]
    done = run_command(command, cwd=checkout, timeout=LINT_TIMEOUT)
    try:
        findings = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise CheckFailed(
            command, checkout, done.returncode, done.stdout + done.stderr
        ) from None
    if done.returncode == 0 and not findings:
        return "clean"
    in_ours: list[str] = []
    in_upstream: list[str] = []
    for f in findings:
        path = Path(f["filename"]).resolve().relative_to(checkout).as_posix()
        row = f["location"]["row"]
        line = f"{path}:{row}:{f['location']['column']}: {f['code']} {f['message']}"
        (in_ours if row in ours.get(path, set()) else in_upstream).append(line)
    parts = [f"{len(findings)} findings"]
    if in_ours:
        parts += [
            f"  in lines the export wrote ({len(in_ours)}):",
            *(f"    {x}" for x in in_ours),
        ]
    if in_upstream:
        codes = sorted({x.split(": ")[1].split()[0] for x in in_upstream})
        parts += [
            f"  in upstream lines the export did not change ({len(in_upstream)}; {', '.join(codes)}):",
            *(f"    {x}" for x in in_upstream),
        ]
    raise CheckFailed(command, checkout, done.returncode, "\n".join(parts))


def _run_mypy(mypy: Path, work: Path, changed_py: Sequence[str]) -> str:
    """Run mypy with upstream's config on the changed files, in the installed copy of the commit.

    The copy has ``_pytest/_version.py`` (written by the install), which a plain
    checkout lacks.  Errors outside the changed files come from the environment
    (stub versions), not from the export, and are shown as a warning.
    """
    command = [str(mypy), "--cache-dir", str(work / "mypy-cache"), *changed_py]
    _progress(f"running {_quoted(command)}")
    try:
        output = run_check(command, cwd=work / "src", timeout=LINT_TIMEOUT)
    except CheckFailed as e:
        if any(line.split(":")[0] in changed_py for line in e.output.splitlines()):
            raise
        _progress(
            "WARNING: mypy reports errors only outside the changed files:\n"
            + e.output.rstrip()
        )
        return "clean on the changed files (errors elsewhere, see above)"
    return output.strip().splitlines()[-1]


def _require_installed(python: Path, tree: Path, module: bytes, what: str) -> Path:
    """The private venv imports ``_pytest`` from itself, and its module is ``module``;
    returns where it imports the module from."""
    probe = "import _pytest.cacheprovider as m, sys; sys.stdout.write(m.__file__)"
    location = Path(
        run_check([str(python), "-c", probe], cwd=tree, timeout=LINT_TIMEOUT).strip()
    )
    if tree.resolve() in location.resolve().parents:
        raise ExportError(
            f"_pytest imports from the checkout ({location}), not from the private venv"
        )
    if location.read_bytes() != module:
        raise ExportError(f"the installed {location} is not {what}")
    return location


def _dropping_dac() -> bool:
    """Whether the tests run as root without DAC capabilities (see envs.DROP_DAC)."""
    return bool(
        hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which(DROP_DAC[0])
    )


def _run_tests(command: Sequence[str], checkout: Path) -> str:
    return summary_line(run_check(command, cwd=checkout, timeout=TEST_TIMEOUT))


# --- series: one branch per layer ------------------------------------------------------

#: Where upstream keeps the tests of the module: the series appends ours to it.
SERIES_TEST_FILE = "testing/test_cacheprovider.py"
#: Upstream's own tests every branch of the series must pass.
SERIES_UPSTREAM_TESTS = ("testing/test_cacheprovider.py", "testing/test_stepwise.py")
SERIES_BRANCH_TEMPLATE = "cache-series-{ref}/{number:02d}-{fix}"
#: Our test-only helper modules, and what the export puts in their place.
HARNESS_MODULES = frozenset({"race_harness", "envs"})
#: Modules of ours that tests import whole (``import scenarios``): the export adds
#: the file to upstream's ``testing/`` under the second name and imports it so.
SUPPORT_MODULES: dict[str, tuple[str, str]] = {
    "scenarios": ("scripts/scenarios.py", "cache_race_scenarios"),
}
LOCAL_HELPERS: dict[str, str] = {
    "DROP_DAC": "\nDROP_DAC = (\n" + "".join(f'    "{a}",\n' for a in DROP_DAC) + ")\n",
    "require": '''
def require(condition: object, message: str) -> None:
    """Fail without a verdict when the interleaving a test needs could not be forced."""
    if not condition:
        pytest.fail(f"the race could not be forced: {message}", pytrace=False)
''',
    "unavailable": '''
def unavailable(reason: str) -> None:
    """Skip a test this machine cannot run (it needs root, Linux or a tool)."""
    pytest.skip(reason)
''',
}
#: Calls a test may only make on some platforms, and the skip the export adds to
#: a test (or test class) that uses one and has no ``skipif`` of its own.
PLATFORM_SKIPS: tuple[tuple[str, str, str], ...] = (
    (
        "geteuid",
        'not sys.platform.startswith("linux")',
        "uses Linux credentials (euid, capabilities)",
    ),
    (
        "setpriv",
        'not sys.platform.startswith("linux")',
        "uses Linux credentials (euid, capabilities)",
    ),
    ("umask", 'sys.platform == "win32"', "POSIX permission bits"),
)
LAYER_MARK = re.compile(r"""^pytest\.mark\.layer\(\s*["']([^"']+)["']\s*\)$""")
ISSUE = re.compile(r"#(\d+)")


@dataclasses.dataclass(frozen=True)
class LayerIssue:
    """What a layer's ``Bug:`` header says about the upstream issue it fixes."""

    number: int | None
    open: bool
    related: tuple[int, ...]
    untested_upstream: bool


def layer_issue(bug: str) -> LayerIssue:
    """Read a ``Bug:`` header: ``#N (open|closed; ...)`` or ``- (related: #M, ...)``.

    Only an issue named first is the layer's own; ``closes`` is for an open
    one.  Issues mentioned in the parenthesis are related, never closed.
    "no regression test" says upstream fixed it without a test.
    """
    own = re.match(r"^#(\d+)\b", bug.strip())
    rest = bug.strip()[own.end() :] if own else bug
    status = rest.strip().lstrip("(").split(";")[0].split(",")[0].strip().lower()
    return LayerIssue(
        number=int(own[1]) if own else None,
        open=bool(own) and status.startswith("open"),
        related=tuple(int(n) for n in ISSUE.findall(rest)),
        untested_upstream="no regression test" in bug or "without a test" in bug,
    )


class _NameReads(cst.CSTVisitor):
    """Names a node reads (attribute names after a dot are not names)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False


def _reads(node: cst.CSTNode) -> set[str]:
    visitor = _NameReads()
    node.visit(visitor)
    return visitor.names


def _layer_of(decorator: cst.Decorator) -> str | None:
    match = LAYER_MARK.match(cst.Module(body=[]).code_for_node(decorator.decorator))
    return match[1] if match else None


def _is_autouse_fixture(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.FunctionDef) and any(
        "fixture" in cst.Module(body=[]).code_for_node(d.decorator)
        and "autouse=True" in cst.Module(body=[]).code_for_node(d.decorator)
        for d in node.decorators
    )


def _without_layer_marks(node: cst.CSTNode) -> cst.CSTNode:
    assert isinstance(node, (cst.FunctionDef, cst.ClassDef))
    return node.with_changes(
        decorators=[d for d in node.decorators if _layer_of(d) is None]
    )


def _decorated(node: cst.CSTNode, *expressions: str) -> cst.CSTNode:
    assert isinstance(node, (cst.FunctionDef, cst.ClassDef))
    added = [cst.Decorator(decorator=cst.parse_expression(e)) for e in expressions]
    return node.with_changes(decorators=[*added, *node.decorators])


def _not_autouse(node: cst.FunctionDef) -> cst.FunctionDef:
    decorators = []
    for d in node.decorators:
        code = cst.Module(body=[]).code_for_node(d.decorator)
        if "autouse=True" in code:
            code = re.sub(r"\(\s*autouse=True\s*\)", "", code)
            code = re.sub(r",?\s*autouse=True", "", code)
            d = d.with_changes(decorator=cst.parse_expression(code))
        decorators.append(d)
    return node.with_changes(decorators=decorators)


@dataclasses.dataclass(frozen=True)
class LayerTests:
    """One layer's tests, as a partial test module, and the ids of its tests."""

    source: str
    tests: list[str]  # "Class::test" or "test", in the module they end up in
    # Files of ours the tests import, as (our path, path in upstream's checkout).
    support: tuple[tuple[str, str], ...] = ()


def _platform_skip(node: cst.CSTNode, used_code: str) -> list[str]:
    code = cst.Module(body=[]).code_for_node(node)
    if "skipif" in code.split("def ", 1)[0].split("class ", 1)[0]:
        return []
    for api, condition, reason in PLATFORM_SKIPS:
        if re.search(rf"\b{api}\b", used_code):
            one_line = f'pytest.mark.skipif({condition}, reason="{reason}")'
            if len(one_line) < 88:  # With its "@", as ruff format would keep it.
                return [one_line]
            return [f'pytest.mark.skipif(\n    {condition},\n    reason="{reason}",\n)']
    return []


def _node_code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _closure(defs: Mapping[str, cst.CSTNode], start: set[str]) -> set[str]:
    """``start`` and the module-level definitions it reads, transitively, by name."""
    found = set(start)
    pending = [n for name in start for n in _reads(defs[name])]
    while pending:
        name = pending.pop()
        if name in defs and name not in found:
            found.add(name)
            pending.extend(_reads(defs[name]))
    return found


def layer_tests(source_root: Path, fix: str) -> LayerTests:
    """The tests marked ``@pytest.mark.layer(fix)`` in our ``testing/*.py``, made exportable.

    Each test keeps its own code; it brings the module-level helpers it uses
    (transitively, by name) and the module's imports (the merge drops unused
    ones).  The layer mark goes (upstream does not register it), an autouse
    fixture of the module becomes a ``usefixtures`` of each exported test,
    ``race_harness`` helpers are replaced by local ones (``LOCAL_HELPERS``),
    and a test that uses a platform-bound call gets a ``skipif``
    (``PLATFORM_SKIPS``) unless it has one.
    """
    imports: list[cst.SimpleStatementLine] = []
    helpers: dict[str, str] = {}
    body: list[cst.CSTNode] = []
    tests: list[str] = []
    support: dict[str, str] = {}
    for path in sorted((source_root / "testing").glob("test_*.py")):
        module = cst.parse_module(path.read_text(encoding="utf-8"))
        defs: dict[str, cst.CSTNode] = {}
        for statement in module.body:
            name = overlay_merge._definition_name(statement)
            if name is not None:
                defs[name] = statement
        autouse = [n for n, node in defs.items() if _is_autouse_fixture(node)]
        selected: dict[str, cst.CSTNode] = {}
        for name, node in defs.items():
            if isinstance(node, cst.FunctionDef) and name.startswith("test"):
                if any(_layer_of(d) == fix for d in node.decorators):
                    selected[name] = _without_layer_marks(node)
                    tests.append(name)
            elif isinstance(node, cst.ClassDef) and name.startswith("Test"):
                whole = any(_layer_of(d) == fix for d in node.decorators)
                members = (
                    node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
                )
                kept: list[cst.CSTNode] = []
                for member in members:
                    if not (
                        isinstance(member, cst.FunctionDef)
                        and member.name.value.startswith("test")
                    ):
                        kept.append(member)
                    elif whole or any(_layer_of(d) == fix for d in member.decorators):
                        kept.append(_without_layer_marks(member))
                        tests.append(f"{name}::{member.name.value}")
                if len(kept) > sum(
                    not (
                        isinstance(m, cst.FunctionDef)
                        and m.name.value.startswith("test")
                    )
                    for m in kept
                ):
                    # The first member kept starts the body: no blank line above it.
                    first = kept[0]
                    if isinstance(first, (cst.FunctionDef, cst.SimpleStatementLine)):
                        leading = list(first.leading_lines)
                        while leading and leading[0].comment is None:
                            leading.pop(0)
                        kept[0] = first.with_changes(leading_lines=leading)
                    cls = node.with_changes(body=node.body.with_changes(body=kept))
                    selected[name] = _without_layer_marks(cls)
        if not selected:
            continue

        wanted = _closure(defs, set(selected))
        for statement in module.body:
            if not overlay_merge._is_import(statement):
                continue
            assert isinstance(statement, cst.SimpleStatementLine)
            stmt = statement.body[0]
            if isinstance(stmt, cst.Import) and len(stmt.names) == 1:
                imported = cst.Module(body=[]).code_for_node(stmt.names[0].name)
                if imported in SUPPORT_MODULES:
                    ours_path, theirs = SUPPORT_MODULES[imported]
                    support[ours_path] = f"testing/{theirs}.py"
                    imports.append(
                        cst.parse_statement(f"import {theirs} as {imported}\n")  # type: ignore[arg-type]
                    )
                    continue
            if isinstance(stmt, cst.ImportFrom) and stmt.module is not None:
                source_module = cst.Module(body=[]).code_for_node(stmt.module)
                if source_module in HARNESS_MODULES:
                    assert not isinstance(stmt.names, cst.ImportStar)
                    for alias in stmt.names:
                        helper = cst.Module(body=[]).code_for_node(alias.name)
                        if helper not in LOCAL_HELPERS:
                            raise ExportError(
                                f"{path.name}: the export has no local stand-in for "
                                f"{source_module}.{helper} (see LOCAL_HELPERS)"
                            )
                        helpers[helper] = LOCAL_HELPERS[helper]
                    continue
            imports.append(statement.with_changes(leading_lines=()))
        for name, definition in defs.items():
            if name not in wanted:
                continue
            if name in selected:
                used = "".join(
                    _node_code(defs[n]) for n in sorted(_closure(defs, {name}))
                )
                extra = _platform_skip(definition, used)
                extra += [f'pytest.mark.usefixtures("{n}")' for n in autouse]
                definition = selected[name]
                if extra:
                    definition = _decorated(definition, *extra)
            body.append(definition)
        for name in autouse:
            fixture = defs[name]
            assert isinstance(fixture, cst.FunctionDef)
            body.insert(0, _not_autouse(fixture))
    if not tests:
        return LayerTests(source="", tests=[])
    lines = ["from __future__ import annotations", ""]
    lines += ["import sys", "import pytest"]
    code = "\n".join(lines) + "\n"
    code += "".join(cst.Module(body=[]).code_for_node(n) for n in imports)
    # Two blank lines before each helper, as the formatter wants them.
    code += "".join("\n\n" + helper.lstrip("\n") for helper in helpers.values())
    code += "".join(
        "\n\n" + _node_code(overlay_merge._without_leading_lines(n)) for n in body
    )
    return LayerTests(
        source=code,
        tests=tests,
        support=tuple(sorted(support.items())),
    )


def merge_tests(upstream_tests: str, ours: LayerTests) -> str:
    """Append our tests and their helpers to upstream's test module (the build's merge).

    A definition upstream (or an earlier branch) already has with the same
    code is not added twice; one with other code is refused: the export never
    replaces an upstream test or helper.
    """
    if not ours.source:
        return upstream_tests
    present = overlay_merge.definition_fingerprints(upstream_tests)
    mine = overlay_merge.definition_fingerprints(ours.source)
    same = {n for n, fp in mine.items() if "." not in n and present.get(n) == fp}
    same |= {
        n
        for n, fp in mine.items()
        if "." in n and n.split(".")[0] not in same and present.get(n) == fp
    }
    source = overlay_merge.without_definitions(ours.source, sorted(set(same)))
    # Only the imports our tests read (before the merge: a dropped line would take
    # its section's blank line with it).
    module = cst.parse_module(source)
    unused = overlay_merge._unused_import_lines(module)
    module = module.with_changes(
        body=[
            n
            for n in module.body
            if not (
                overlay_merge._is_import(n)
                and overlay_merge._normalized(module, n) in unused
            )
        ]
    )
    source = module.code
    try:
        result = overlay_merge.merge(upstream_tests, source, partial=True)
    except overlay_merge.MergeError as e:
        raise ExportError(
            f"cannot merge our tests into {SERIES_TEST_FILE}: {e}"
        ) from None
    if result.replaced:
        raise ExportError(
            f"our tests would replace {', '.join(sorted(result.replaced))} of upstream's "
            f"{SERIES_TEST_FILE}: rename ours"
        )
    before = cst.parse_module(upstream_tests)
    merged = cst.parse_module(result.code)
    undefined = set(overlay_merge.undefined_names(merged)) - set(
        overlay_merge.undefined_names(before)
    )
    if undefined:
        raise ExportError(
            f"the exported tests use names they do not bring: {', '.join(sorted(undefined))}"
        )
    return merged.code


def layer_fragments(
    layer: layers.Layer, fragments: Mapping[str, str], issue: LayerIssue
) -> dict[str, str]:
    """Our fragments that belong to ``layer``: ``+<fix>.*`` or named after an issue its header names."""
    numbers = {str(n) for n in (issue.number, *issue.related) if n is not None}
    mine: dict[str, str] = {}
    for name, text in fragments.items():
        match = FRAGMENT_NAME.match(name)
        assert match is not None
        if match["issue"] == f"+{layer.name}" or match["issue"] in numbers:
            mine[name] = text
    return mine


def _paragraphs(docstring_body: str) -> str:
    """The layer's prose, re-wrapped for a commit message (rst ``literals`` as `literals`)."""
    out = []
    for para in docstring_body.strip().split("\n\n"):
        text = " ".join(para.split()).replace("``", "`")
        out.append(textwrap.fill(text, MESSAGE_WIDTH))
    return "\n\n".join(out)


def _layer_prose(layer: layers.Layer) -> str:
    docstring = ast.get_docstring(ast.parse(layer.source)) or ""
    lines = docstring.splitlines()
    body = [
        line
        for line in lines[1:]
        if line.partition(":")[0] not in layers.HEADER_FIELDS
        or not line.partition(":")[1]
    ]
    return _paragraphs("\n".join(body))


def _bullet(text: str) -> str:
    """One ``* text`` item of a commit message, wrapped."""
    return textwrap.fill(f"* {text}", MESSAGE_WIDTH, subsequent_indent="  ")


def _changelog_section(fragments: Mapping[str, str]) -> str:
    return "Changelog:\n" + "\n".join(
        _bullet(f"{' '.join(text.split())} ({name})")
        for name, text in sorted(fragments.items())
    )


def _test_plan(tests: Sequence[str]) -> str:
    plan = ["Test plan:", *(f"  {SERIES_TEST_FILE}::{t}" for t in tests)]
    plan += [
        "",
        f"    python -m pytest {' '.join(SERIES_UPSTREAM_TESTS)}",
        f"    ruff check / ruff format --check on the changed files, mypy {MODULE_PATH}",
    ]
    return "\n".join(plan)


def _issue_trailers(layer: layers.Layer) -> list[str]:
    """``closes #N`` for an open issue, ``refs #N`` for a closed one, ``related: #N``."""
    issue = layer_issue(layer.bug)
    trailers = []
    if issue.number is not None:
        trailers.append(
            f"closes #{issue.number}" if issue.open else f"refs #{issue.number}"
        )
    trailers += [f"related: #{n}" for n in issue.related if n != issue.number]
    return trailers


def _joined_message(parts: Sequence[str], co_authors: Sequence[str]) -> str:
    message = "\n\n".join(p for p in parts if p) + "\n"
    if co_authors:
        message += "\n" + "".join(f"Co-authored-by: {who}\n" for who in co_authors)
    return message


def series_message(
    layer: layers.Layer,
    *,
    groundwork: Sequence[layers.Layer],
    regression_for: Sequence[int],
    fragments: Mapping[str, str],
    tests: Sequence[str],
    co_authors: Sequence[str] = (),
) -> str:
    """A commit message in upstream's shape for one layer of the series."""
    issue = layer_issue(layer.bug)
    summary = f"cacheprovider: {' '.join(layer.summary.split()).replace('``', '`')}"
    if len(summary) > MESSAGE_WIDTH:
        summary = f"cacheprovider: fix {layer.name}" + (
            f" (#{issue.number})" if issue.number else ""
        )
    parts = [summary, _layer_prose(layer)]
    for work in groundwork:
        parts.append(
            textwrap.fill(
                f"It builds on {work.name} ({' '.join(work.summary.split()).replace('``', '`')}), "
                "which upstream already fixed its own way; the change and its test "
                "come with this one.",
                MESSAGE_WIDTH,
            )
        )
    for number in regression_for:
        parts.append(
            textwrap.fill(
                f"This adds a regression test for #{number}: upstream fixed it "
                "without an automated test.",
                MESSAGE_WIDTH,
            )
        )
    if fragments:
        parts.append(_changelog_section(fragments))
    parts.append(_test_plan(tests))
    parts.append("\n".join(_issue_trailers(layer)))
    return _joined_message(parts, co_authors)


@dataclasses.dataclass
class SeriesBranch:
    """One branch of the series and what it carries."""

    layer: layers.Layer
    branch: str
    commit: str
    parent: str
    files: dict[str, bytes]
    tests: list[str]
    groundwork: list[str]
    orphans: list[str]
    missing: list[str] = dataclasses.field(default_factory=list)
    results: list[str] = dataclasses.field(default_factory=list)


def series_pr_numbers(values: Sequence[str]) -> dict[str, int]:
    """``--pr-number FIX=N`` (repeatable) for a series: a PR number per layer."""
    numbers: dict[str, int] = {}
    for value in values:
        fix, sep, number = value.partition("=")
        if not sep or not number.isdigit():
            raise ExportError(
                f"--pr-number {value!r}: with --series give FIX=N, one per branch"
            )
        numbers[fix.strip()] = int(number)
    return numbers


def plan_series(
    checkout: Path,
    ref_commit: str,
    source_root: Path,
    base: str,
    upstream_source: str,
    *,
    pr_numbers: Mapping[str, int],
    ref: str,
    co_authors: Sequence[str] = (),
) -> tuple[list[SeriesBranch], list[str]]:
    """The commits of the series, stacked in layer order (not yet branches), and notes."""
    with (source_root / BASES_PATH).open(encoding="utf-8") as f:
        entry = json.load(f)["bases"][base]
    not_needed: Mapping[str, str] = entry.get("not_needed", {})
    all_layers = layers.load_layers(source_root / LAYERS_PATH)
    known = {layer.name for layer in all_layers}
    unknown = sorted(set(pr_numbers) - known)
    if unknown:
        raise ExportError(f"--pr-number for unknown fixes: {', '.join(unknown)}")
    pyproject = _git(checkout, "show", f"{ref_commit}:pyproject.toml")
    fragments = collect_fragments(source_root, fragment_types(pyproject))
    existing = set(
        _git(
            checkout, "ls-tree", "-r", "--name-only", ref_commit, "--", "changelog"
        ).split()
    )
    tests_source = _git(checkout, "show", f"{ref_commit}:{SERIES_TEST_FILE}")
    notes: list[str] = []
    done: list[str] = []
    series: list[SeriesBranch] = []
    parent = ref_commit
    previous_module = upstream_source
    for layer in all_layers:
        if layer.name in done:
            continue  # Landed earlier, as groundwork of a layer that needs it.
        if layer.name in not_needed:
            notes.append(
                f"{layer.number:02d} {layer.name}: skipped, upstream has this fix at {ref} "
                f"(base {base}: {not_needed[layer.name]})"
            )
            continue
        # The build's notes on stderr would repeat for every branch; ours say it once.
        with _backend_reading(source_root), contextlib.redirect_stderr(io.StringIO()):
            selection = overlay_backend._selection(
                base, {"fixes": ",".join([*done, layer.name])}
            )
            module = overlay_backend.merged_module(
                base, upstream_source, selection
            ).code
        groundwork = [
            lay
            for lay in selection.layers
            if lay.name not in done and lay.name != layer.name
        ]
        if module == previous_module:
            notes.append(
                f"{layer.number:02d} {layer.name}: skipped, no change to {MODULE_PATH}"
            )
            continue
        carried = [*groundwork, layer]
        # Groundwork brings its tests only where upstream fixed it without one.
        tested = [
            lay for lay in groundwork if layer_issue(lay.bug).untested_upstream
        ] + [layer]
        ours = [layer_tests(source_root, lay.name) for lay in tested]
        if not any(t.tests for t in ours):
            raise ExportError(
                f"layer {layer.path.name} has no test marked @pytest.mark.layer({layer.name!r}): "
                "an upstream PR needs one"
            )
        for t in ours:
            tests_source = merge_tests(tests_source, t)
        mine: dict[str, str] = {}
        for lay in carried:
            mine.update(layer_fragments(lay, fragments, layer_issue(lay.bug)))
        missing = [] if mine else [f"changelog/+{layer.name}.<type>.rst"]
        names = upstream_fragment_names(list(mine), pr_numbers.get(layer.name))
        files = {
            MODULE_PATH: module.encode("utf-8"),
            SERIES_TEST_FILE: tests_source.encode("utf-8"),
        }
        for t in ours:
            for ours_path, theirs_path in t.support:
                files[theirs_path] = (source_root / ours_path).read_bytes()
        for name, theirs in names.items():
            if f"changelog/{theirs}" in existing:
                raise ExportError(f"upstream already has changelog/{theirs}")
            files[f"changelog/{theirs}"] = mine[name].encode("utf-8")
        regression_for = [
            n
            for lay in groundwork
            if (i := layer_issue(lay.bug)).untested_upstream
            and (n := i.number) is not None
        ]
        test_ids = [t for o in ours for t in o.tests]
        message = series_message(
            layer,
            groundwork=groundwork,
            regression_for=regression_for,
            fragments={names[n]: mine[n] for n in mine},
            tests=test_ids,
            co_authors=co_authors,
        )
        commit = write_commit(checkout, parent, files, message)
        outside = disallowed_paths(changed_paths(checkout, parent, commit))
        if outside:
            raise ExportError(
                f"{layer.name} would touch paths outside the allowed ones: {outside}"
            )
        series.append(
            SeriesBranch(
                layer=layer,
                branch=SERIES_BRANCH_TEMPLATE.format(
                    ref=ref_slug(ref),
                    number=layer.number,
                    fix=layer.name,
                ),
                commit=commit,
                parent=parent,
                files=files,
                tests=test_ids,
                groundwork=[lay.name for lay in groundwork],
                orphans=sorted(t for t in names.values() if t.startswith("+")),
                missing=missing,
            )
        )
        for lay in groundwork:
            skipped = f"{lay.number:02d} {lay.name}: skipped, "
            notes[:] = [n for n in notes if not n.startswith(skipped)]
            why = (
                f" (upstream has its fix: {not_needed[lay.name]})"
                if lay.name in not_needed
                else ""
            )
            notes.append(
                f"{lay.number:02d} {lay.name}: lands in {layer.name}'s branch, which needs it{why}"
            )
        done += [lay.name for lay in carried]
        parent = commit
        previous_module = module
    return series, notes


def _numstat(checkout: Path, old: str, new: str, path: str) -> tuple[int, int]:
    out = _git(
        checkout, "diff", "--numstat", "--no-renames", old, new, "--", path
    ).split()
    return (int(out[0]), int(out[1])) if out else (0, 0)


class SeriesChecks:
    """One private venv for the whole series: each branch installed in turn, then linted and tested."""

    def __init__(self, checkout: Path, version: str) -> None:
        self.checkout = checkout
        self.version = version
        self.work = Path(tempfile.mkdtemp(prefix="pytest-export-series-"))
        _progress(f"checks work in {self.work} (kept if a check fails)")
        venv = self.work / "venv"
        self.python = venv_python(venv)
        run_check(
            [sys.executable, "-m", "venv", str(venv)],
            cwd=self.work,
            timeout=INSTALL_TIMEOUT,
        )
        self.tools = install_linters(self.python, checkout)
        self.installed_once = False
        self.failed = False

    def _install(self, tree: Path) -> None:
        extra = (
            ["--no-deps", "--force-reinstall"]
            if self.installed_once
            else [f"pytest-xdist=={XDIST_VERSION}"]
        )
        run_check(
            [str(self.python), "-m", "pip", "install", "-q", str(tree), *extra],
            cwd=self.work,
            timeout=INSTALL_TIMEOUT,
            env=_check_env(SETUPTOOLS_SCM_PRETEND_VERSION=self.version),
        )
        self.installed_once = True

    def run(self, item: SeriesBranch) -> list[str]:
        """Result lines for one branch; a failing check is reported, not raised."""
        # ``_run_mypy`` works in ``<dir>/src``: the tree is that ``src``.
        branch_work = self.work / f"{item.layer.number:02d}-{item.layer.name}"
        tree = branch_work / "src"
        archive = self.work / f"{branch_work.name}.tar"
        _git(
            self.checkout, "archive", "--format=tar", f"--output={archive}", item.commit
        )
        with tarfile.open(archive) as tf:
            tf.extractall(tree, filter="data")
        archive.unlink()
        results: list[str] = []

        def check(name: str, run: Callable[[], str]) -> None:
            try:
                results.append(f"{name}: {run()}")
            except CheckFailed as e:
                self.failed = True
                results.append(f"{name}: FAILED\n" + textwrap.indent(str(e), "    "))

        _progress(f"{item.branch}: installing into the private venv")
        self._install(tree)
        changed_py = [
            p
            for p in changed_paths(self.checkout, item.parent, item.commit)
            if p.endswith(".py")
        ]
        ruff = self.tools["ruff"]
        if ruff is None:
            results.append("ruff: SKIPPED (not installable, not on PATH)")
        else:
            ours = {
                path: added_lines(self.checkout, item.parent, item.commit, path)
                for path in changed_py
            }
            check("ruff check", lambda: _ruff_check(ruff, tree, changed_py, ours))
            fmt = [str(ruff), "format", "--check", "--no-cache", *changed_py]
            check(
                "ruff format --check",
                lambda: run_check(fmt, cwd=tree, timeout=LINT_TIMEOUT).strip(),
            )
        mypy = self.tools["mypy"]
        if mypy is None:
            results.append("mypy: SKIPPED (not installable, not on PATH)")
        else:
            check("mypy", lambda: _run_mypy(mypy, branch_work, changed_py))
        _require_installed(
            self.python, tree, item.files[MODULE_PATH], f"{item.branch}'s module"
        )
        drop_dac = _dropping_dac()
        ids = [f"{SERIES_TEST_FILE}::{t}" for t in item.tests]

        def pytest_command(label: str, *args: str) -> list[str]:
            return [
                *(DROP_DAC if drop_dac else ()),
                str(self.python),
                "-m",
                "pytest",
                *args,
                f"--basetemp={branch_work / f'basetemp-{label}'}",
                "-o",
                f"cache_dir={self.work / 'outer-cache'}",
            ]

        deselect = [a for i in ids for a in ("--deselect", i)]
        upstream = pytest_command("upstream", *SERIES_UPSTREAM_TESTS, *deselect)
        check(
            f"upstream {' '.join(SERIES_UPSTREAM_TESTS)}",
            functools.partial(_run_tests, upstream, tree),
        )
        exported = pytest_command("exported", *ids)
        check(
            f"exported tests ({len(ids)})",
            functools.partial(_run_tests, exported, tree),
        )
        return results

    def finish(self) -> None:
        if not self.failed:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            _progress(f"work dir kept: {self.work}")


def planned(
    checkout: Path,
    source_root: Path,
    onto: str,
    *,
    pr_numbers: Mapping[str, int],
    co_authors: Sequence[str],
    what: str,
    checks: bool,
) -> tuple[str, str | None, BaseChoice, list[SeriesBranch], list[str]]:
    """The ref's commit and nearest tag, the base that fits it, and the series planned onto it.

    Checks install the commits under the tag's version: without a tag it
    stops here, before any branch exists.
    """
    ref_commit = resolve_commit(checkout, onto)
    tag = nearest_tag(checkout, ref_commit)
    if checks and tag is None:
        raise ExportError(
            f"no release tag reachable from {onto}: cannot set a version to install"
        )
    where = f"{onto} ({ref_commit[:12]})"
    _progress(f"{what} {where}, nearest tag {tag or 'none'}")
    upstream = _git(checkout, "show", f"{ref_commit}:{MODULE_PATH}")
    choice = choose_base(upstream, source_root, tag, where)
    _progress(f"base {choice.base} fits {where}")
    series, notes = plan_series(
        checkout,
        ref_commit,
        source_root,
        choice.base,
        upstream,
        pr_numbers=pr_numbers,
        ref=onto,
        co_authors=co_authors,
    )
    if not series:
        raise ExportError(f"nothing to export onto {onto}: {'; '.join(notes)}")
    return ref_commit, tag, choice, series, notes


def export_series(args: argparse.Namespace, checkout: Path, source_root: Path) -> int:
    """``--series``: one branch per layer, stacked in layer order, each checked."""
    try:
        require_clean_checkout(checkout)
        pr_numbers = series_pr_numbers(args.pr_number or [])
        ref_commit, tag, choice, series, notes = planned(
            checkout,
            source_root,
            args.onto,
            pr_numbers=pr_numbers,
            co_authors=args.co_authored_by,
            what="series onto",
            checks=not args.skip_checks,
        )
        for item in series:
            require_new_branch(checkout, item.branch)
        for item in series:
            _git(checkout, "branch", item.branch, item.commit)
            _progress(f"created branch {item.branch} at {item.commit[:12]}")
        checks: SeriesChecks | None = None
        if tag is not None and not args.skip_checks:
            checks = SeriesChecks(checkout, tag)
        for item in series:
            if checks is None:
                item.results = ["checks SKIPPED (--skip-checks)"]
            else:
                item.results = checks.run(item)
        if checks is not None:
            checks.finish()
    except (ExportError, layers.LayerError) as e:
        print(f"export failed: {e}", file=sys.stderr)
        return 1

    print(f"series onto {args.onto} ({ref_commit[:12]}), base {choice.base}:")
    for note in notes:
        print(f"  note: {note}")
    failed = False
    for item in series:
        added, removed = _numstat(checkout, item.parent, item.commit, MODULE_PATH)
        test_added, _ = _numstat(checkout, item.parent, item.commit, SERIES_TEST_FILE)
        with_ = f" (with {', '.join(item.groundwork)})" if item.groundwork else ""
        print(f"{item.branch}{with_}")
        print(
            f"  module: +{added}/-{removed} lines; tests: +{test_added} lines, "
            f"{len(item.tests)} tests; commit {item.commit[:12]}"
        )
        for line in item.results:
            failed |= "FAILED" in line
            print(textwrap.indent(line, "  "))
        if item.missing:
            failed = True
            print(
                f"  MISSING changelog fragment: upstream needs one; add {item.missing[0]} "
                "to this repository and export again"
            )
        if item.orphans:
            print(
                f"  changelog without an issue number: {', '.join(item.orphans)}: export again "
                f"with --pr-number {item.layer.name}=<PR> once the pull request has a number"
            )
    print(
        "Nothing was pushed. Review each branch (git log -p), reword where needed, and open "
        "the pull requests in order: each one is based on the one before."
    )
    return 1 if failed else 0


def single_message(
    series: Sequence[SeriesBranch],
    files: Mapping[str, bytes],
    *,
    co_authors: Sequence[str] = (),
) -> str:
    """One message for the squashed series: the why, each fix, the changelog, the plan, the issues."""
    fixes = []
    trailers: list[str] = []
    for item in series:
        summary = " ".join(item.layer.summary.split()).replace("``", "`")
        with_ = f" (with {', '.join(item.groundwork)})" if item.groundwork else ""
        fixes.append(_bullet(f"{item.layer.name}: {summary}{with_}"))
        trailers += [t for t in _issue_trailers(item.layer) if t not in trailers]
    fragments = {
        path.removeprefix("changelog/"): text.decode("utf-8")
        for path, text in files.items()
        if path.startswith("changelog/")
    }
    parts = [
        COMMIT_SUMMARY,
        COMMIT_WHY,
        "Fixes (one commit each with --series):\n" + "\n".join(fixes),
        _changelog_section(fragments),
        _test_plan([t for item in series for t in item.tests]),
        "\n".join(trailers),
    ]
    return _joined_message(parts, co_authors)


def squashed_files(
    series: Sequence[SeriesBranch], pr_number: int | None
) -> dict[str, bytes]:
    """What the last branch of the series holds, its fragments named for ``pr_number``."""
    files: dict[str, bytes] = {}
    for item in series:
        files.update(item.files)
    fragments = [
        p.removeprefix("changelog/") for p in files if p.startswith("changelog/")
    ]
    for ours, theirs in upstream_fragment_names(fragments, pr_number).items():
        if ours != theirs:
            files[f"changelog/{theirs}"] = files.pop(f"changelog/{ours}")
    return files


def export_single(args: argparse.Namespace, checkout: Path, source_root: Path) -> int:
    """The default mode: the whole series squashed into one commit on one branch, checked."""
    if args.pr_number and (len(args.pr_number) > 1 or not args.pr_number[0].isdigit()):
        print(
            f"export failed: --pr-number takes one number without --series, got {args.pr_number}",
            file=sys.stderr,
        )
        return 2
    pr_number = int(args.pr_number[0]) if args.pr_number else None
    branch: str = args.branch or branch_name(args.onto)
    created = False
    try:
        require_clean_checkout(checkout)
        require_new_branch(checkout, branch)
        ref_commit, tag, choice, series, notes = planned(
            checkout,
            source_root,
            args.onto,
            pr_numbers={},
            co_authors=(),
            what="onto",
            checks=not args.skip_checks,
        )
        missing = [m for item in series for m in item.missing]
        if missing:
            raise ExportError(
                f"upstream needs a changelog fragment: add {', '.join(missing)}"
            )
        files = squashed_files(series, pr_number)
        message = single_message(series, files, co_authors=args.co_authored_by)
        commit = write_commit(checkout, ref_commit, files, message)
        outside = disallowed_paths(changed_paths(checkout, ref_commit, commit))
        if outside:
            raise ExportError(
                f"the export would touch paths outside {ALLOWED_PATHS + ALLOWED_PREFIXES}: {outside}"
            )
        _git(checkout, "branch", branch, commit)
        created = True
        _git(checkout, "checkout", "--quiet", branch)
        _progress(f"created branch {branch} at {commit[:12]}")
        whole = dataclasses.replace(
            series[-1],
            branch=branch,
            commit=commit,
            parent=ref_commit,
            files=files,
            tests=[t for item in series for t in item.tests],
        )
        if tag is None or args.skip_checks:
            results = ["checks SKIPPED (--skip-checks)"]
        else:
            checks = SeriesChecks(checkout, tag)
            results = checks.run(whole)
            checks.finish()
    except (ExportError, layers.LayerError) as e:
        print(f"export failed: {e}", file=sys.stderr)
        if created:
            print(
                FAILED_BRANCH_HINT.format(branch=branch, checkout=checkout),
                file=sys.stderr,
            )
        return 1

    print(_git(checkout, "diff", "--stat", ref_commit, commit).rstrip())
    print(
        f"base: {choice.base}; fixes: {', '.join(item.layer.name for item in series)}"
    )
    for note in notes:
        print(f"note: {note}")
    for line in results:
        print(line)
    print(f"branch: {branch} (off {args.onto}, commit {commit[:12]})")
    print(NEXT_STEPS.format(checkout=checkout, branch=branch, ref=args.onto))
    orphans = sorted(
        p.removeprefix("changelog/") for p in files if p.startswith("changelog/+")
    )
    if orphans:
        print(ORPHANS_HINT.format(orphans=", ".join(orphans)))
    return 1 if any("FAILED" in line for line in results) else 0


# --- main -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "checkout", type=Path, metavar="PYTEST_CHECKOUT", help="a pytest git checkout"
    )
    parser.add_argument(
        "--onto",
        default=DEFAULT_REF,
        metavar="REF",
        help="branch off this ref (default: main)",
    )
    parser.add_argument(
        "--branch", metavar="NAME", help=f"branch name (default: {BRANCH_TEMPLATE})"
    )
    parser.add_argument(
        "--skip-checks", action="store_true", help="skip linters and tests (quick runs)"
    )
    parser.add_argument(
        "--series",
        action="store_true",
        help="one stacked branch per layer instead of one commit of every layer",
    )
    parser.add_argument(
        "--pr-number",
        action="append",
        metavar="N|FIX=N",
        help="name changelog fragments that have no issue (+name.type.rst) N.type.rst; "
        "with --series, FIX=N per branch (repeatable)",
    )
    parser.add_argument(
        "--co-authored-by",
        action="append",
        default=[],
        metavar="'NAME <EMAIL>'",
        help="add a Co-authored-by trailer (upstream asks to credit AI tools this way)",
    )
    parser.add_argument(
        "--source-root",
        type=Path,
        default=REPO_ROOT,
        help="the fork checkout to export: overlay, bases.json, testing/, changelog/ (default: this one)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checkout: Path = args.checkout.resolve()
    source_root: Path = args.source_root.resolve()
    if args.series:
        if args.branch:
            print("export failed: --branch does not apply to --series", file=sys.stderr)
            return 2
        return export_series(args, checkout, source_root)
    return export_single(args, checkout, source_root)


if __name__ == "__main__":
    sys.exit(main())
