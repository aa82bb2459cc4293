"""Running pytest for the benchmark: the projects, timed processes, the fork/stock alternation."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
from pathlib import Path
import re
import resource
import shutil
import subprocess
import time

from forktools import report
from forktools.bench.config import BenchError
from forktools.bench.config import FORK
from forktools.bench.config import LASTFAILED_ENTRIES
from forktools.bench.config import LASTFAILED_NOW_FAILING
from forktools.bench.config import LASTFAILED_WERE_FAILING
from forktools.bench.config import ORDER
from forktools.bench.config import RUN_TIMEOUT
from forktools.bench.config import Settings
from forktools.bench.config import STOCK
from forktools.bench.config import SUITE_FAILING
from forktools.bench.config import SUITE_FILES
from forktools.bench.config import SUITE_TESTS_PER_FILE
from forktools.scenarios.harness import child_env
from forktools.scenarios.harness import PROJECTS as SCENARIO_PROJECTS


#: The benchmark's projects (the suite's 2,000 tests are generated).
PROJECTS = Path(__file__).resolve().parent / "projects"


progress = report.Progress(stderr=True, tag="bench ")


def suite_test_file(index: int) -> str:
    """Test module ``index`` of the suite project: plain functions, a few failing."""
    lines = []
    for i in range(SUITE_TESTS_PER_FILE):
        number = index * SUITE_TESTS_PER_FILE + i
        body = "assert 0, 'planted failure'" if number in SUITE_FAILING else "pass"
        lines += [f"def test_{number:04d}():", f"    {body}", "", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_project(
    directory: Path, project: str | None, generated: Mapping[str, str] | None = None
) -> Path:
    """A project: ``pytest.ini`` (pins the rootdir), the files of ``projects/<project>``
    and the ``generated`` ones (name -> text)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SCENARIO_PROJECTS / "pytest.ini", directory / "pytest.ini")
    if project is not None:
        for path in sorted((PROJECTS / project).glob("*.py")):
            shutil.copyfile(path, directory / path.name)
    for name, text in (generated or {}).items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def suite_tests() -> dict[str, str]:
    """The 2,000 tests of the suite project, generated: 20 modules of 100."""
    return {f"test_suite_{i:02d}.py": suite_test_file(i) for i in range(SUITE_FILES)}


def lastfailed_seed(entries: int = LASTFAILED_ENTRIES) -> dict[str, bool]:
    """What ``cache/lastfailed`` holds before the timed run: ``entries`` others plus ours."""
    seed = {
        f"tests/gen/test_mod{i // 100:04d}.py::test_case_{i:06d}": True
        for i in range(entries)
    }
    for i in LASTFAILED_WERE_FAILING:
        seed[f"test_lastfailed.py::test_case[{i}]"] = True
    return seed


def lastfailed_expected(seed: Mapping[str, bool]) -> set[str]:
    """The keys ``cache/lastfailed`` must hold after the run (stock and fork alike)."""
    keys = {k for k in seed if not k.startswith("test_lastfailed.py::")}
    return keys | {
        f"test_lastfailed.py::test_case[{i}]" for i in LASTFAILED_NOW_FAILING
    }


@dataclasses.dataclass(frozen=True)
class Completed:
    """A finished pytest process."""

    returncode: int
    output: str
    seconds: float
    #: User plus system CPU seconds of the process and every child it waited for
    #: (xdist workers): far less sensitive to other users of the machine.
    cpu_seconds: float = 0.0


def children_cpu() -> float:
    """CPU seconds used so far by the children (and their waited-for children) of this process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pytest(
    python: Path,
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> Completed:
    """Run ``python -m pytest args`` in ``cwd`` (under ``prefix``, e.g. strace) and time it."""
    cpu = children_cpu()
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [*prefix, str(python), "-m", "pytest", *args],
            cwd=cwd,
            env=child_env(env, write_bytecode=True),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(
            f"pytest {' '.join(args)} in {cwd}: still running after {RUN_TIMEOUT:.0f}s"
        ) from exc
    seconds = time.perf_counter() - start
    output = done.stdout.decode("utf-8", "replace")
    return Completed(done.returncode, output, seconds, children_cpu() - cpu)


def expect(done: Completed, *, returncode: int, summary: str, what: str) -> None:
    """Refuse a run whose exit status or summary line is not what the project must give."""
    if done.returncode != returncode or not re.search(summary, done.output):
        tail = "\n".join(done.output.strip().splitlines()[-15:])
        raise BenchError(
            f"{what}: exit {done.returncode}, wanted {returncode} and /{summary}/:\n{tail}"
        )


def alternate(
    what: str,
    rounds: int,
    measure: Callable[[str], float],
    *,
    unit: str,
    warmup: bool = True,
) -> dict[str, list[float]]:
    """Measure fork, stock, fork, stock ... for ``rounds`` rounds after one warm-up pair."""
    samples: dict[str, list[float]] = {FORK: [], STOCK: []}
    if warmup:
        for env in ORDER:
            measure(env)
    for n in range(1, rounds + 1):
        for env in ORDER:
            samples[env].append(measure(env))
        fork, stock = samples[FORK][-1], samples[STOCK][-1]
        progress(
            f"{what}: round {n}/{rounds}: fork {fork:.4g} {unit}, stock {stock:.4g} {unit}"
        )
    return samples


class Bench:
    """The two envs, a scratch directory and the settings: runs each benchmark."""

    def __init__(
        self, pythons: Mapping[str, Path], workdir: Path, settings: Settings
    ) -> None:
        self.pythons = dict(pythons)
        self.workdir = workdir
        self.settings = settings

    def project(
        self,
        kind: str,
        env: str,
        project: str | None,
        generated: Mapping[str, str] | None = None,
    ) -> Path:
        """The copy of ``env`` of a project for benchmark ``kind`` (written on first use)."""
        directory = self.workdir / kind / env
        if not directory.is_dir():
            write_project(directory, project, generated)
        return directory
