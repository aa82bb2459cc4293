"""Fast tests of ``scripts/bench.py``: command line, ratios, targets, JSON, table and chart.

Nothing here builds an env or times anything: the benchmark's figures are fed
in as small fake results (issues 7 and 12 forbid timing assertions).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
import sys
from xml.etree import ElementTree

import pytest


SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import bench  # noqa: E402


def fake_document() -> dict[str, object]:
    """A tiny but complete document, as a run of every benchmark would produce."""
    samples = {bench.FORK: [1.0, 0.98, 1.02], bench.STOCK: [1.0, 1.01, 0.99]}
    results = [
        bench.result_from_samples(
            "suite-run",
            "s",
            samples,
            variant="full, 1 process",
            workers=1,
            **bench.cpu_figures(
                {bench.FORK: [0.99, 1.0], bench.STOCK: [1.0, 1.0]}, rounds=2
            ),
        ),
        bench.result_from_samples(
            "set-cost",
            "us/set",
            {bench.FORK: [20.0], bench.STOCK: [30.0]},
            variant="overwrite, tmpfs",
        ),
        bench.result_from_samples(
            "set-syscalls",
            "syscalls/set",
            {bench.FORK: [4.0], bench.STOCK: [10.0]},
            variant="overwrite, tmpfs",
        ),
        bench.result_from_samples(
            "steady-state-writes",
            "files",
            {bench.FORK: [0.0], bench.STOCK: [2.0]},
            variant="files rewritten",
        ),
        bench.result_from_samples(
            "lastfailed-session-end",
            "s CPU",
            {bench.FORK: [1.2], bench.STOCK: [1.5]},
            variant="1,000,000 entries",
        ),
        bench.result_from_samples(
            "lastfailed-memory",
            "MB",
            {bench.FORK: [530.0], bench.STOCK: [495.0]},
            variant="1,000,000 entries",
        ),
        bench.result_from_samples(
            "set-throughput",
            "ops/s",
            {bench.FORK: [6000.0], bench.STOCK: [4000.0]},
            variant="overwrite",
        ),
        bench.result_from_samples(
            "lastfailed-100k",
            "s",
            {bench.FORK: [0.105], bench.STOCK: [0.1]},
            variant="session-end",
        ),
    ]
    for workers, stock_failures in ((2, 0), (8, 3), (32, 20), (64, 50)):
        results.append(
            bench.result_from_samples(
                "creation-race",
                "s",
                {bench.FORK: [0.5 + workers / 10], bench.STOCK: [0.5 + workers / 11]},
                variant=f"{workers} creators",
                workers=workers,
                creators=workers,
                fork_failures=0,
                stock_failures=stock_failures,
            )
        )
    return bench.to_document(
        results,
        envs={"fork": "8.2.0+fork.abc", "stock": "8.2.0"},
        machine={"cores": 2, "cpu": "test"},
    )


class TestCommandLine:
    def test_defaults(self) -> None:
        args = bench.build_parser().parse_args([])
        assert args.base == "8.2.0"
        assert not args.quick
        assert args.rounds is None
        assert args.json is None
        assert bench.settings_for(args) == bench.FULL

    def test_quick_json_chart_and_only(self, tmp_path: Path) -> None:
        argv = [
            "--quick",
            "--json",
            str(tmp_path / "r.json"),
            "--chart",
            "c.svg",
            "--only",
            "set-throughput",
        ]
        args = bench.build_parser().parse_args(argv)
        assert bench.settings_for(args) == bench.QUICK
        assert args.json == tmp_path / "r.json"
        assert args.chart == Path("c.svg")
        assert args.only == ["set-throughput"]

    def test_rounds_override_every_benchmark(self) -> None:
        settings = bench.settings_for(
            bench.build_parser().parse_args(["--quick", "--rounds", "4"])
        )
        assert (
            settings.suite_rounds,
            settings.set_rounds,
            settings.lastfailed_rounds,
            settings.race_trials,
        ) == (
            4,
            4,
            4,
            4,
        )
        assert settings.set_ops == bench.QUICK.set_ops

    @pytest.mark.parametrize(
        "argv", [["--rounds", "0"], ["--rounds", "x"], ["--only", "nope"]]
    )
    def test_rejects(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as excinfo:
            bench.build_parser().parse_args(argv)
        assert excinfo.value.code == 2
        capsys.readouterr()

    def test_workers_of_the_race(self) -> None:
        args = bench.build_parser().parse_args(["--workers", "2,16"])
        assert bench.settings_for(args).race_workers == (2, 16)

    @pytest.mark.parametrize("text", ["2,x", "0", ""])
    def test_bad_workers(self, text: str, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            bench.build_parser().parse_args(["--workers", text])
        capsys.readouterr()

    def test_quick_does_less_than_full(self) -> None:
        for field in (
            "suite_rounds",
            "set_rounds",
            "lastfailed_rounds",
            "race_trials",
            "set_ops",
        ):
            assert getattr(bench.QUICK, field) <= getattr(bench.FULL, field)
        assert bench.QUICK.race_workers == bench.FULL.race_workers == (2, 8, 32, 64)


class TestRatios:
    @pytest.mark.parametrize(
        ("fork", "stock", "expected"),
        [(1.0, 2.0, 0.5), (6000.0, 4000.0, 1.5), (0.0, 1.0, 0.0)],
    )
    def test_fork_over_stock(self, fork: float, stock: float, expected: float) -> None:
        assert bench.compute_ratio(fork, stock) == pytest.approx(expected)

    @pytest.mark.parametrize(
        ("fork", "stock"), [(1.0, 0.0), (math.nan, 1.0), (1.0, math.inf)]
    )
    def test_meaningless_ratio_is_none(self, fork: float, stock: float) -> None:
        assert bench.compute_ratio(fork, stock) is None

    def test_ratio_of_medians_and_paired_spread(self) -> None:
        result = bench.result_from_samples(
            "suite-run",
            "s",
            {bench.FORK: [3.0, 1.0, 2.0], bench.STOCK: [2.0, 4.0, 4.0]},
        )
        assert (result.fork, result.stock) == (2.0, 4.0)
        assert result.ratio == pytest.approx(0.5)
        assert result.extra["ratio_range"] == [0.25, 1.5]
        assert result.extra["rounds"] == 3

    def test_median_of_nothing_is_nan(self) -> None:
        assert math.isnan(bench.median([]))
        assert bench.compute_ratio(bench.median([]), 1.0) is None


class TestTargets:
    @pytest.mark.parametrize(
        ("name", "variant", "ratio", "met"),
        [
            ("suite-run", "full, 1 process", 1.019, True),
            ("suite-run", "full, -n 2", 1.03, False),
            ("set-cost", "overwrite, tmpfs", 0.8, True),
            ("set-cost", "new-key, tmpfs", 0.81, False),
            ("set-cost", "overwrite, disk (user CPU)", 0.79, True),
            ("set-cost", "something else", 0.5, None),
            ("set-syscalls", "new-key, disk", 1.0, True),
            ("set-syscalls", "overwrite, tmpfs", 1.1, False),
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
        assert bench.target_met(entry) is met

    @pytest.mark.parametrize(("fork", "met"), [(0.0, True), (1.0, False), (None, None)])
    def test_steady_state_wants_no_write_at_all(
        self, fork: float | None, met: bool | None
    ) -> None:
        entry: dict[str, object] = {
            "name": "steady-state-writes",
            "variant": "files rewritten",
            "fork": fork,
        }
        assert bench.target_met(entry) is met

    def test_pass_and_miss_lines(self) -> None:
        lines = bench.target_lines(fake_document())
        assert (
            "PASS  set-cost overwrite, tmpfs: 0.6667; target fork/stock <= 0.80"
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
        assert len(lines) == 7

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
        assert bench.target_met(entry) is met


class TestJsonShape:
    def test_required_names_and_fields(self) -> None:
        document = json.loads(json.dumps(fake_document()))
        assert set(document) >= {"results", "envs", "machine"}
        entries = document["results"]
        assert {e["name"] for e in entries} <= set(bench.NAMES)
        assert {e["name"] for e in entries} >= {
            "suite-run",
            "set-cost",
            "creation-race",
        }
        for entry in entries:
            assert {"name", "fork", "stock", "unit", "ratio"} <= set(entry)
            assert isinstance(entry["fork"], float)
            assert isinstance(entry["stock"], float)
            assert entry["ratio"] == pytest.approx(
                entry["fork"] / entry["stock"], abs=1e-4
            )
        race = [e for e in entries if e["name"] == "creation-race"]
        assert [e["workers"] for e in race] == [2, 8, 32, 64]
        assert race[-1]["target_met"] is True

    def test_missing_ratio_is_null(self) -> None:
        entry = bench.Result("set-throughput", "ops/s", 5.0, 0.0, "overwrite").to_json()
        assert entry["ratio"] is None
        assert entry["target_met"] is None
        assert json.loads(json.dumps(entry))["ratio"] is None

    def test_table_has_a_row_per_result(self) -> None:
        table = bench.format_table(fake_document()).splitlines()
        assert table[0].startswith("| benchmark | variant | fork | stock |")
        assert len(table) == 2 + 12
        assert any(
            "50/64 failed" in row and "0 fork failures at 64: met" in row
            for row in table
        )
        assert any(
            row.startswith(
                "| set-cost | overwrite, tmpfs | 20 | 30 | us/set | 0.6667 | fork/stock <= 0.80: met"
            )
            for row in table
        )


class TestChart:
    def test_svg_has_both_lines_and_the_failures(self) -> None:
        svg = bench.render_chart(fake_document())
        root = ElementTree.fromstring(svg)
        ns = "{http://www.w3.org/2000/svg}"
        lines = root.findall(f"{ns}polyline")
        assert len(lines) == 2
        assert all(len(line.attrib["points"].split()) == 4 for line in lines)
        texts = [t.text or "" for t in root.iter(f"{ns}text")]
        assert "50/64 failed" in texts
        assert any(
            t.startswith("fork 8.2.0+fork.abc: 0/106 creators failed") for t in texts
        )
        assert any(t.startswith("stock 8.2.0: 73/106 creators failed") for t in texts)

    def test_no_race_results(self) -> None:
        with pytest.raises(bench.BenchError, match="no creation-race results"):
            bench.render_chart({"results": []})

    @pytest.mark.parametrize(
        ("span", "step"), [(0.9, 0.2), (7.3, 2.0), (64.0, 20.0), (0.0, 1.0)]
    )
    def test_nice_steps(self, span: float, step: float) -> None:
        assert bench._nice_step(span) == pytest.approx(step)


class TestMain:
    def test_from_json_prints_the_table_and_draws(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        source = tmp_path / "results.json"
        source.write_text(json.dumps(fake_document()), encoding="utf-8")
        chart = tmp_path / "doc" / "race.svg"
        assert bench.main(["--from-json", str(source), "--chart", str(chart)]) == 0
        assert "| creation-race | 64 creators |" in capsys.readouterr().out
        assert chart.read_text(encoding="utf-8").startswith("<svg")

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
        outcome = bench.judge_race(tmp_path, [0, 1, 0, 3], launch=100.0)
        assert outcome.failures == 3
        assert outcome.time_to_first_test == pytest.approx(3.0)
        assert outcome.leftovers == 1
        assert outcome.errors == {
            "OSError: [Errno 39] '...'": 1,
            "exit 3 before the fixture": 1,
        }
        assert outcome.unreleased == 0


class TestProjects:
    def test_suite_has_2000_tests_and_the_planted_failures(self) -> None:
        files = bench.suite_files()
        text = "".join(v for k, v in files.items() if k.startswith("test_"))
        assert text.count("def test_") == 2000
        assert text.count("planted failure") == len(bench.SUITE_FAILING)
        assert "cache.mkdir" in files["conftest.py"]
        assert "cache.set" in files["conftest.py"]

    def test_lastfailed_expectation(self) -> None:
        seed = bench.lastfailed_seed(10)
        assert len(seed) == 10 + len(bench.LASTFAILED_WERE_FAILING)
        expected = bench.lastfailed_expected(seed)
        assert len(expected) == 10 + len(bench.LASTFAILED_NOW_FAILING)
        assert "test_lastfailed.py::test_case[5]" in expected
        assert "test_lastfailed.py::test_case[0]" not in expected


class TestMachine:
    def test_machine_and_filesystem(self, tmp_path: Path) -> None:
        info = bench.machine_info()
        assert {"cpu", "cores", "os", "python", "load"} <= set(info)
        kind = bench.filesystem_of(tmp_path)
        assert isinstance(kind, str)
        assert kind


class TestCpu:
    def test_cpu_figures_use_the_measured_rounds(self) -> None:
        cpu = {bench.FORK: [9.0, 1.0, 2.0, 3.0], bench.STOCK: [9.0, 2.0, 2.0, 2.0]}
        assert bench.cpu_figures(cpu, 3) == {
            "fork_cpu": 2.0,
            "stock_cpu": 2.0,
            "cpu_ratio": 1.0,
        }

    def test_cpu_column(self) -> None:
        result = bench.result_from_samples(
            "suite-run",
            "s",
            {bench.FORK: [1.0], bench.STOCK: [1.0]},
            variant="full, 1 process",
            cpu_ratio=0.98,
        )
        row = bench.format_table(bench.to_document([result])).splitlines()[-1]
        assert row.endswith("| 0.98 |")


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
            bench.syscalls_between(self.TRACE, "start-overwrite", "end-overwrite") == 5
        )

    def test_missing_markers_are_an_error(self) -> None:
        with pytest.raises(bench.BenchError, match="without the markers"):
            bench.syscalls_between(self.TRACE, "start-new-key", "end-new-key")

    def test_writes_to_the_cache_only(self) -> None:
        trace = (
            '7 write(4</p/.pytest_cache/v/cache/nodeids>, "[]", 2) = 2\n'
            '7 write(1</dev/pts/0>, "...", 3) = 3\n'
            '7 write(5</p/.pytest_cache/v/cache/stepwise>, "[]", 2) = 2\n'
        )
        assert bench.cache_writes(trace) == (2, 4)

    def test_snapshot_sees_a_rewrite(self, tmp_path: Path) -> None:
        (tmp_path / "v").mkdir()
        value = tmp_path / "v" / "value"
        value.write_text("1")
        before = bench.cache_snapshot(tmp_path)
        assert bench.cache_snapshot(tmp_path) == before
        fresh = tmp_path / "v" / "fresh"
        fresh.write_text("2")
        fresh.replace(value)  # A rename: another inode.
        assert bench.cache_snapshot(tmp_path) != before
