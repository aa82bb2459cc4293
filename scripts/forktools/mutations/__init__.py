"""Mutation proof: every layer's tests fail without that layer, for the intended reason.

Who runs it: CI (``tox run -e mutations``, the default base) and developers after
changing a layer or its tests (``--base 9.2.0``, ``--layer atomic-set``).

For each base release and each layer whose bug that base has (``not_needed`` in
``backend/bases.json`` names the others), it builds the fork without the layer
and without every layer that needs it (``-C fixes=<the rest>``), installs that
build into a private env with pytest-xdist, and runs the tests marked
``@pytest.mark.layer("<fix>")``.  Each must fail with an ``AssertionError`` whose
message carries ``[<fix>]``: the damage the test looks for.  A ``HarnessError``
(the race could not be forced), a skip or another exception is no proof.  The
same tests then run against the complete fork, where they must pass.

    python scripts/mutations.py                        # default base
    python scripts/mutations.py --base 8.2.0 --base 9.2.0 --json mutations.json

Exit status: 0 when every layer is proved on every base, 1 otherwise, 2 when an
env or a build could not be made.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Sequence
import dataclasses
import hashlib
import json
import os
from pathlib import Path
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from forktools import envs
from forktools import proc
from forktools import REPO_ROOT as REPO
from forktools import report
import layers


#: Run by the env's Python: prints the ``layer`` markers of the collected tests.
MARKERS_PROBE = Path(__file__).resolve().parent / "markers_probe.py"
BASES_FILE = REPO / "backend" / "bases.json"
RUN_TIMEOUT = 1800.0
PROVED, NOT_PROVED = "proved", "NOT PROVED"


class MutationError(Exception):
    """An env or a build could not be made: no verdict."""


@dataclasses.dataclass
class TestResult:
    name: str
    outcome: str  # passed, damage, failed, harness, error, skipped
    message: str


@dataclasses.dataclass
class Row:
    base: str
    layer: str
    without: list[str]
    tests_without: list[TestResult]
    tests_with: list[TestResult]

    @property
    def verdict(self) -> str:
        ok = (
            bool(self.tests_without)
            and all(t.outcome == "damage" for t in self.tests_without)
            and len(self.tests_with) == len(self.tests_without)
            and all(t.outcome == "passed" for t in self.tests_with)
        )
        return PROVED if ok else NOT_PROVED


def load_bases() -> dict[str, dict[str, object]]:
    with BASES_FILE.open(encoding="utf-8") as f:
        bases: dict[str, dict[str, object]] = json.load(f)["bases"]
    return bases


def default_base() -> str:
    with BASES_FILE.open(encoding="utf-8") as f:
        return str(json.load(f)["default"])


def dependents(
    name: str, series: Sequence[layers.Layer], extra: dict[str, list[str]]
) -> set[str]:
    """``name`` and every layer that needs it, directly or not, on this base."""
    out = {name}
    changed = True
    while changed:
        changed = False
        for layer in series:
            needs = {*layer.needs, *extra.get(layer.name, [])}
            if layer.name not in out and needs & out:
                out.add(layer.name)
                changed = True
    return out


def classify(case: ET.Element, fix: str) -> TestResult:
    """What one junit ``testcase`` says, judged for the layer ``fix``."""
    name = f"{case.get('classname', '')}::{case.get('name', '')}"
    for tag in ("failure", "error", "skipped"):
        node = case.find(tag)
        if node is None:
            continue
        message = node.get("message", "") or (node.text or "")
        text = message + "\n" + (node.text or "")
        if tag == "skipped":
            return TestResult(name, "skipped", message)
        if "HarnessError" in text:
            return TestResult(name, "harness", message)
        if tag == "failure" and f"[{fix}]" in text and "AssertionError" in text:
            return TestResult(name, "damage", message.splitlines()[0][:200])
        return TestResult(name, "failed" if tag == "failure" else "error", message)
    return TestResult(name, "passed", "")


def _guards_a_layer(path: Path) -> bool:
    """Whether a test module decorates a test with ``pytest.mark.layer(...)``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and ast.unparse(decorator.func) == "pytest.mark.layer"
                ):
                    return True
    return False


def layer_test_files() -> list[str]:
    """Our test files that hold tests guarding a layer (the others need not import)."""
    return sorted(
        str(p.relative_to(REPO))
        for p in (REPO / "testing").glob("test_*.py")
        if _guards_a_layer(p)
    )


progress = report.Progress()


class Runner:
    """Builds, installs and tests forks of one base in one private env."""

    def __init__(self, base: str, workdir: Path) -> None:
        self.base = base
        self.workdir = workdir
        self.uv = envs.find_uv()
        if self.uv is None:
            raise MutationError("uv is needed (pip install uv)")
        self.python = envs.create_venv(workdir / "env", uv=self.uv)
        envs.pip_install(
            self.python,
            [f"pytest==={base}", f"pytest-xdist=={envs.XDIST_VERSION}"],
            uv=self.uv,
            env=envs.installer_env(),
        )

    def install(self, fixes: Sequence[str] | None) -> str:
        """Build the fork with ``fixes`` (None: all) and install it; return its version."""
        assert self.uv is not None
        out = (
            self.workdir
            / "wheels"
            / hashlib.sha256(repr(fixes).encode()).hexdigest()[:12]
        )
        shutil.rmtree(out, ignore_errors=True)
        cmd = [self.uv, "build", "--quiet", "--wheel", "--out-dir", str(out)]
        cmd += ["--config-setting", f"base={self.base}"]
        if fixes:
            cmd += ["--config-setting", f"fixes={','.join(fixes)}"]
        try:
            proc.run(
                [*cmd, str(REPO)],
                what="build",
                timeout=envs.INSTALL_TIMEOUT,
                env=envs.installer_env(),
                error=envs.EnvError,
            )
            (wheel,) = out.glob("*.whl")
            envs.pip_install(
                self.python,
                ["--no-deps", str(wheel)],
                uv=self.uv,
                reinstall="pytest",
                env=envs.installer_env(),
            )
        except (envs.EnvError, ValueError) as e:
            raise MutationError(f"fork without some layers on {self.base}: {e}") from e
        return wheel.name.split("-")[1]

    def run_tests(self, fixes: Sequence[str]) -> dict[str, list[TestResult]]:
        """Run the tests of the layers ``fixes``; results per layer."""
        junit = self.workdir / "junit.xml"
        junit.unlink(missing_ok=True)
        cmd = [str(self.python), "-m", "pytest", *layer_test_files()]
        # A build without some layers cannot import every test module (names the
        # layer defines): the others still run.
        cmd += ["-p", "xdist", "-n", "2", "--continue-on-collection-errors"]
        cmd += [f"--layer={fix}" for fix in fixes]
        cmd += [
            f"--junitxml={junit}",
            "-o",
            "junit_family=xunit1",
            "-q",
            f"--basetemp={self.workdir / 'basetemp'}",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOX_")}
        proc.run(
            cmd,
            what="the layers' tests",
            timeout=RUN_TIMEOUT,
            cwd=REPO,
            env=env,
            check=False,
            error=MutationError,
        )
        if not junit.exists():
            raise MutationError(f"no test report from {' '.join(cmd)}")
        results: dict[str, list[TestResult]] = {fix: [] for fix in fixes}
        markers = self.markers()
        for case in ET.parse(junit).iter("testcase"):
            key = f"{case.get('classname', '')}::{case.get('name', '')}"
            for fix in markers.get(key, ()):
                if fix in results:
                    results[fix].append(classify(case, fix))
        return results

    def markers(self) -> dict[str, list[str]]:
        """Per junit test name, the layers its ``layer`` markers name."""
        done = proc.run(
            [str(self.python), str(MARKERS_PROBE), *layer_test_files()],
            what="collecting the layer markers",
            timeout=300,
            cwd=REPO,
            check=False,
            error=MutationError,
        )
        for line in done.stdout.splitlines():
            if line.startswith("MARKERS="):
                found: dict[str, list[str]] = json.loads(line[len("MARKERS=") :])
                return found
        raise MutationError(f"could not collect the layer markers:\n{done.stdout}")


def prove_base(
    base: str, entry: dict[str, object], only: Sequence[str], workdir: Path
) -> list[Row]:
    series = layers.load_layers()
    not_needed = entry.get("not_needed", {})
    extra = entry.get("needs", {})
    assert isinstance(not_needed, dict) and isinstance(extra, dict)
    candidates = [
        layer.name
        for layer in series
        if layer.name not in not_needed and (not only or layer.name in only)
    ]
    runner = Runner(base, workdir)
    progress(f"[{base}] complete fork: {runner.install(None)}")
    with_results = runner.run_tests(candidates)
    rows = []
    for n, name in enumerate(candidates, 1):
        removed = dependents(name, series, extra)
        rest = [layer.name for layer in series if layer.name not in removed]
        rest = [r for r in rest if r not in not_needed]
        if rest:
            version = runner.install(rest)
        else:
            envs.pip_install(
                runner.python,
                [f"pytest==={base}"],
                uv=runner.uv,
                reinstall="pytest",
                env=envs.installer_env(),
            )
            version = f"{base} (stock: every layer needs {name})"
        progress(f"[{base}] {n}/{len(candidates)} without {name}: {version}")
        results = runner.run_tests([name])[name]
        rows.append(
            Row(base, name, sorted(removed), results, with_results.get(name, []))
        )
        progress(f"[{base}]   {rows[-1].verdict}: {summary(results)}")
    return rows


def summary(results: Sequence[TestResult]) -> str:
    if not results:
        return "no tests"
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


def table(rows: Sequence[Row]) -> str:
    body = []
    for row in rows:
        damaged = sum(t.outcome == "damage" for t in row.tests_without)
        passed = sum(t.outcome == "passed" for t in row.tests_with)
        n = len(row.tests_without)
        body.append(
            (
                row.layer,
                row.base,
                str(n),
                f"{damaged}/{n} fail for the damage",
                f"{passed}/{len(row.tests_with)} pass",
                row.verdict,
            )
        )
    head = ("layer", "base", "tests", "without it", "with it", "verdict")
    return report.table(head, body)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base", action="append", default=[], help="base release (repeatable)"
    )
    parser.add_argument(
        "--layer", action="append", default=[], help="only this layer (repeatable)"
    )
    parser.add_argument(
        "--json", metavar="FILE", help="write every test's outcome here"
    )
    args = parser.parse_args(argv)
    bases = load_bases()
    chosen = args.base or [default_base()]
    unknown = [b for b in chosen if b not in bases]
    if unknown:
        parser.error(
            f"unsupported base {', '.join(unknown)}; supported: {', '.join(bases)}"
        )
    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="pytest-mutations-") as tmp:
        for base in chosen:
            try:
                rows += prove_base(base, bases[base], args.layer, Path(tmp) / base)
            except (MutationError, envs.EnvError) as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
    print()
    print(table(rows))
    print(f"\n{len(rows)} layer x base cells in {time.monotonic() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [dataclasses.asdict(r) | {"verdict": r.verdict} for r in rows], indent=2
            )
        )
    bad = [r for r in rows if r.verdict != PROVED]
    for row in bad:
        print(f"\n{row.layer} on {row.base} is not proved:")
        for t in [*row.tests_without, *row.tests_with]:
            print(
                f"  {t.outcome:8} {t.name}: {t.message.splitlines()[0] if t.message else ''}"
            )
    return 1 if bad else 0
