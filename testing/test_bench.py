"""Tests of the benchmark's judging and reporting: what a user reads in its output.

Offline and without timings: documents are made up, traces and race records are
written by hand; the measurements themselves run only in ``tox run -e bench``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
import sys

import pytest


SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

from forktools import bench  # noqa: E402
from forktools.bench import output  # noqa: E402
from forktools.bench import race  # noqa: E402
from forktools.bench import results  # noqa: E402
from forktools.bench import running  # noqa: E402
from forktools.bench import targets  # noqa: E402
from forktools.bench import traces  # noqa: E402
from forktools.bench.config import BenchError  # noqa: E402
from forktools.bench.config import FORK  # noqa: E402
from forktools.bench.config import STOCK  # noqa: E402


def cells(line: str) -> list[str]:
    """The cells of a markdown table row."""
    return [c.strip() for c in line.split("|")[1:-1]]


def fake_document() -> dict[str, object]:
    """A tiny but complete document, as a run of every benchmark would produce."""
    samples = {FORK: [1.0, 0.98, 1.02], STOCK: [1.0, 1.01, 0.99]}
    found = [
        results.result_from_samples(
            "suite-run",
            "s",
            samples,
            variant="full, 1 process",
            workers=1,
            **results.cpu_figures({FORK: [0.99, 1.0], STOCK: [1.0, 1.0]}, rounds=2),
        ),
        results.result_from_samples(
            "set-cost",
            "us/set",
            {FORK: [20.0], STOCK: [30.0]},
            variant="overwrite, tmpfs",
        ),
        results.result_from_samples(
            "set-syscalls",
            "syscalls/set",
            {FORK: [4.0], STOCK: [10.0]},
            variant="overwrite, tmpfs",
        ),
        results.result_from_samples(
            "steady-state-writes",
            "files",
            {FORK: [0.0], STOCK: [2.0]},
            variant="files rewritten",
        ),
        results.result_from_samples(
            "lastfailed-session-end",
            "s CPU",
            {FORK: [1.2], STOCK: [1.5]},
            variant="1,000,000 entries",
        ),
        results.result_from_samples(
            "lastfailed-memory",
            "MB",
            {FORK: [530.0], STOCK: [495.0]},
            variant="1,000,000 entries",
        ),
        results.result_from_samples(
            "set-throughput",
            "ops/s",
            {FORK: [6000.0], STOCK: [4000.0]},
            variant="overwrite",
        ),
        results.result_from_samples(
            "session-start",
            "s CPU",
            {FORK: [0.1], STOCK: [0.08]},
            variant="100,000 entries",
        ),
        results.result_from_samples(
            "lastfailed-100k",
            "s",
            {FORK: [0.105], STOCK: [0.1]},
            variant="session-end",
        ),
    ]
    for workers, stock_failures in ((2, 0), (8, 3), (32, 20), (64, 50)):
        found.append(
            results.result_from_samples(
                "creation-race",
                "s",
                {FORK: [0.5 + workers / 10], STOCK: [0.5 + workers / 11]},
                variant=f"{workers} creators",
                workers=workers,
                creators=workers,
                fork_failures=0,
                stock_failures=stock_failures,
            )
        )
    return results.to_document(
        found,
        envs={"fork": "8.2.0+fork.abc", "stock": "8.2.0"},
        machine={"cores": 2, "cpu": "test"},
    )


class TestCommandLine:
    def test_rounds_override_every_benchmark(self) -> None:
        settings = bench.settings_for(
            bench.build_parser().parse_args(["--quick", "--rounds", "4"])
        )
        rounds = (
            settings.suite_rounds,
            settings.set_rounds,
            settings.lastfailed_rounds,
            settings.race_trials,
        )
        assert rounds == (4, 4, 4, 4)

    @pytest.mark.parametrize(
        "argv",
        [
            ["--rounds", "0"],
            ["--rounds", "x"],
            ["--only", "nope"],
            ["--workers", "2,x"],
            ["--workers", "0"],
        ],
    )
    def test_rejects(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as excinfo:
            bench.build_parser().parse_args(argv)
        assert excinfo.value.code == 2
        capsys.readouterr()

    def test_workers_of_the_race(self) -> None:
        args = bench.build_parser().parse_args(["--workers", "2,16"])
        assert bench.settings_for(args).race_workers == (2, 16)


class TestRatios:
    @pytest.mark.parametrize(
        ("fork", "stock", "expected"),
        [(1.0, 2.0, 0.5), (6000.0, 4000.0, 1.5), (0.0, 1.0, 0.0)],
    )
    def test_fork_over_stock(self, fork: float, stock: float, expected: float) -> None:
        assert results.compute_ratio(fork, stock) == pytest.approx(expected)

    @pytest.mark.parametrize(
        ("fork", "stock"), [(1.0, 0.0), (math.nan, 1.0), (1.0, math.inf)]
    )
    def test_meaningless_ratio_is_none(self, fork: float, stock: float) -> None:
        assert results.compute_ratio(fork, stock) is None

    def test_ratio_of_medians_and_paired_spread(self) -> None:
        result = results.result_from_samples(
            "suite-run",
            "s",
            {FORK: [3.0, 1.0, 2.0], STOCK: [2.0, 4.0, 4.0]},
        )
        assert (result.fork, result.stock) == (2.0, 4.0)
        assert result.ratio == pytest.approx(0.5)
        assert result.extra["ratio_range"] == [0.25, 1.5]
        assert result.extra["rounds"] == 3

    def test_median_of_nothing_is_nan(self) -> None:
        assert math.isnan(results.median([]))
        assert results.compute_ratio(results.median([]), 1.0) is None


class TestTargets:
    @pytest.mark.parametrize(
        ("name", "variant", "ratio", "met"),
        [
            ("suite-run", "full, 1 process", 1.019, True),
            ("suite-run", "full, -n 2", 1.03, False),
            ("set-cost", "overwrite, tmpfs", 1.0, True),
            ("set-cost", "new-key, tmpfs", 1.01, False),
            ("set-cost", "overwrite, disk (user CPU)", 0.79, True),
            ("session-start", "100,000 entries", 1.02, True),
            ("session-start", "100,000 entries", 1.4, False),
            ("session-start-instructions", "100,000 entries", 1.0, True),
            ("session-start-instructions", "100,000 entries", 1.008, False),
            ("session-end-instructions", "1,000 entries", 0.99, True),
            ("set-cost", "something else", 0.5, None),
            ("set-syscalls", "new-key, disk", 1.0, True),
            ("set-syscalls", "overwrite, tmpfs", 1.1, False),
            ("set-instructions", "overwrite, disk", 0.75, True),
            ("set-instructions", "new-key, tmpfs", 1.001, False),
            ("lastfailed-session-end", "1,000 entries", 1.02, True),
            ("lastfailed-session-end", "10,000 entries", 1.03, False),
            ("lastfailed-memory", "1,000,000 entries", 1.05, True),
            ("lastfailed-memory", "100,000 entries", 1.06, False),
            ("lastfailed-100k", "session-end", 5.0, None),
            ("set-throughput", "overwrite", 0.5, None),
            ("something-else", "", 1.0, None),
            ("suite-run", "full, 1 process", None, None),
        ],
    )
    def test_ratio_targets(
        self, name: str, variant: str, ratio: float | None, met: bool | None
    ) -> None:
        """suite-run is judged on its CPU ratio, the others on the ratio of their figure."""
        entry = {"name": name, "variant": variant, "ratio": ratio, "cpu_ratio": None}
        if name == "suite-run":
            entry.update(ratio=5.0, cpu_ratio=ratio)
        assert targets.target_met(entry) is met

    @pytest.mark.parametrize(("fork", "met"), [(0.0, True), (1.0, False), (None, None)])
    def test_steady_state_wants_no_write_at_all(
        self, fork: float | None, met: bool | None
    ) -> None:
        entry: dict[str, object] = {
            "name": "steady-state-writes",
            "variant": "files rewritten",
            "fork": fork,
        }
        assert targets.target_met(entry) is met

    def test_pass_and_miss_lines(self) -> None:
        lines = targets.target_lines(fake_document())
        assert (
            "PASS  set-cost overwrite, tmpfs: 0.6667; target fork/stock <= 1.00"
            in lines
        )
        assert (
            "PASS  steady-state-writes files rewritten: fork 0, stock 2; target fork <= 0"
            in lines
        )
        assert any(
            line.startswith("MISS  lastfailed-memory 1,000,000 entries: 1.071")
            for line in lines
        )
        assert any(
            line.startswith("PASS  suite-run full, 1 process: CPU 0.995")
            for line in lines
        )
        assert (
            "PASS  creation-race 64 creators: fork 0/64 failed; target 0 fork failures at 64"
            in lines
        )
        assert (
            "MISS  session-start 100,000 entries: 1.25; target fork/stock <= 1.00 (±2%)"
            in lines
        )
        assert len(lines) == 8

    @pytest.mark.parametrize(
        ("workers", "fork_failures", "met"),
        [(64, 0, True), (64, 1, False), (8, 0, None), (32, 5, None)],
    )
    def test_creation_race_is_judged_at_64(
        self, workers: int, fork_failures: int, met: bool | None
    ) -> None:
        entry = {
            "name": "creation-race",
            "workers": workers,
            "fork_failures": fork_failures,
            "ratio": 1.0,
        }
        assert targets.target_met(entry) is met


class TestTable:
    def test_missing_ratio_is_null(self) -> None:
        entry = results.Result(
            "set-throughput", "ops/s", 5.0, 0.0, "overwrite"
        ).to_json()
        assert entry["ratio"] is None
        assert entry["target_met"] is None
        assert json.loads(json.dumps(entry))["ratio"] is None

    def test_a_row_per_result_with_its_verdict(self) -> None:
        table = output.format_table(fake_document()).splitlines()
        assert cells(table[0])[:3] == ["benchmark", "variant", "fork"]
        rows = [cells(row) for row in table[2:]]
        assert len(rows) == 13
        race64 = next(r for r in rows if r[:2] == ["creation-race", "64 creators"])
        assert race64[3] == "6.318 (50/64 failed)"
        assert race64[6] == "0 fork failures at 64: met"
        cost = next(r for r in rows if r[0] == "set-cost")
        assert cost[1:7] == [
            "overwrite, tmpfs",
            "20",
            "30",
            "us/set",
            "0.6667",
            "fork/stock <= 1.00: met",
        ]
        start = next(r for r in rows if r[0] == "session-start")
        assert start[6] == "fork/stock <= 1.00 (±2%): MISSED"

    def test_cpu_column(self) -> None:
        result = results.result_from_samples(
            "suite-run",
            "s",
            {FORK: [1.0], STOCK: [1.0]},
            variant="full, 1 process",
            cpu_ratio=0.98,
        )
        row = output.format_table(results.to_document([result])).splitlines()[-1]
        assert row.split("|")[-2].strip() == "0.98"


class TestChart:
    def test_svg_names_both_envs_and_their_failures(self) -> None:
        pytest.importorskip("matplotlib")
        svg = output.render_chart(fake_document())
        assert svg.lstrip().startswith(("<?xml", "<svg"))
        assert "50/64 failed" in svg
        assert "fork 8.2.0+fork.abc: 0/106 creators failed" in svg
        assert "stock 8.2.0: 73/106 creators failed" in svg

    def test_no_race_results(self) -> None:
        pytest.importorskip("matplotlib")
        with pytest.raises(BenchError, match="no creation-race results"):
            output.render_chart({"results": []})


class TestMain:
    def test_from_json_prints_the_table_and_the_targets(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        source = tmp_path / "results.json"
        source.write_text(json.dumps(fake_document()), encoding="utf-8")
        assert bench.main(["--from-json", str(source)]) == 0
        out = capsys.readouterr().out
        rows = [cells(line) for line in out.splitlines() if line.startswith("|")]
        assert ["creation-race", "64 creators"] in [row[:2] for row in rows]
        assert "Targets (issues 12 and 17):" in out
        assert (
            "PASS  set-syscalls overwrite, tmpfs: 0.4; target fork/stock <= 1.00" in out
        )

    def test_unreadable_json_is_an_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert bench.main(["--from-json", str(tmp_path / "missing.json")]) == 1
        assert "error:" in capsys.readouterr().err


class TestRaceJudging:
    def write_creator(
        self, project: Path, i: int, *, output: str, record: dict[str, object] | None
    ) -> None:
        (project / "logs" / f"{i}.txt").write_text(output, encoding="utf-8")
        if record is not None:
            (project / "results" / f"{i}.json").write_text(
                json.dumps(record), encoding="utf-8"
            )

    def test_counts_failed_creators(self, tmp_path: Path) -> None:
        for sub in ("logs", "results"):
            (tmp_path / sub).mkdir()
        ok: dict[str, object] = {
            "mkdir": 0.001,
            "first_test": 102.0,
            "error": None,
        }
        self.write_creator(tmp_path, 0, output="3 passed", record=ok)
        self.write_creator(
            tmp_path,
            1,
            output="1 error",
            record={**ok, "first_test": 104.0, "error": "OSError: [Errno 39] '/x'"},
        )
        self.write_creator(
            tmp_path, 2, output="INTERNALERROR>", record={**ok, "first_test": 103.0}
        )
        self.write_creator(tmp_path, 3, output="", record=None)
        (tmp_path / "pytest-cache-files-123-abcd").mkdir()
        outcome = race.judge_race(tmp_path, [0, 1, 0, 3], launch=100.0)
        assert outcome.failures == 3
        assert outcome.time_to_first_test == pytest.approx(3.0)
        assert outcome.leftovers == 1
        assert outcome.errors == {
            "OSError: [Errno 39] '...'": 1,
            "exit 3 before the fixture": 1,
        }
        assert outcome.unreleased == 0


class TestProjects:
    def test_lastfailed_expectation(self) -> None:
        seed = running.lastfailed_seed(10)
        assert "test_lastfailed.py::test_case[0]" in seed
        expected = running.lastfailed_expected(seed)
        assert len(expected) == 10 + 2
        assert "test_lastfailed.py::test_case[5]" in expected
        assert "test_lastfailed.py::test_case[0]" not in expected

    def test_a_project_is_its_files_and_the_generated_ones(
        self, tmp_path: Path
    ) -> None:
        running.write_project(tmp_path, "suite", {"test_x.py": "def test_x(): pass\n"})
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["conftest.py", "pytest.ini", "test_x.py"]


class TestMachine:
    def test_machine_and_filesystem(self, tmp_path: Path) -> None:
        info = output.machine_info()
        assert {"cpu", "cores", "os", "python", "load"} <= set(info)
        kind = traces.filesystem_of(tmp_path)
        assert isinstance(kind, str)
        assert kind


class TestCpu:
    def test_cpu_figures_use_the_measured_rounds(self) -> None:
        cpu = {FORK: [9.0, 1.0, 2.0, 3.0], STOCK: [9.0, 2.0, 2.0, 2.0]}
        assert results.cpu_figures(cpu, 3) == {
            "fork_cpu": 2.0,
            "stock_cpu": 2.0,
            "cpu_ratio": 1.0,
        }


class TestTraces:
    TRACE = """\
101 stat("/pytest-bench-marker/start-overwrite", 0x7ffc) = -1 ENOENT (No such file or directory)
101 getpid()                          = 101
101 openat(AT_FDCWD, "/c/v/bench/pytest-cache-files-101-ab", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 3
101 write(3</c/v/bench/pytest-cache-files-101-ab>, "{}", 2) = 2
101 close(3)                          = 0
101 rename("/c/v/bench/pytest-cache-files-101-ab", "/c/v/bench/value") = 0
101 stat("/pytest-bench-marker/end-overwrite", 0x7ffc) = -1 ENOENT (No such file or directory)
"""

    def test_syscalls_between_markers(self) -> None:
        assert (
            traces.syscalls_between(self.TRACE, "start-overwrite", "end-overwrite") == 5
        )

    def test_missing_markers_are_an_error(self) -> None:
        with pytest.raises(BenchError, match="without the markers"):
            traces.syscalls_between(self.TRACE, "start-new-key", "end-new-key")

    def test_writes_to_the_cache_only(self) -> None:
        trace = (
            '7 write(4</p/.pytest_cache/v/cache/nodeids>, "[]", 2) = 2\n'
            '7 write(1</dev/pts/0>, "...", 3) = 3\n'
            '7 write(5</p/.pytest_cache/v/cache/stepwise>, "[]", 2) = 2\n'
        )
        assert traces.cache_writes(trace) == (2, 4)

    def test_snapshot_sees_a_rewrite(self, tmp_path: Path) -> None:
        (tmp_path / "v").mkdir()
        value = tmp_path / "v" / "value"
        value.write_text("1")
        before = traces.cache_snapshot(tmp_path)
        assert traces.cache_snapshot(tmp_path) == before
        fresh = tmp_path / "v" / "fresh"
        fresh.write_text("2")
        fresh.replace(value)  # A rename: another inode.
        assert traces.cache_snapshot(tmp_path) != before
