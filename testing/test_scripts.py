"""Tests of the tools: matrix, bisect predicate, stress runner, scenario harness, entry scripts.

What a user sees: verdicts, tables, summaries, exit statuses. All fast tests are
offline: no env is built and no registry is asked (envs and scenario runs are
replaced by fakes). The one slow test runs the real matrix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest


SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

from forktools import bisect as bisect_run  # noqa: E402
from forktools import envs  # noqa: E402
from forktools import matrix  # noqa: E402
from forktools import report  # noqa: E402
from forktools import scenarios  # noqa: E402
from forktools import stress  # noqa: E402
from forktools.matrix import versions  # noqa: E402
from forktools.scenarios import harness  # noqa: E402


#: mkdir-race as measured: the summary must read as in the README.
MKDIR_VERDICTS: dict[str, scenarios.Verdict] = {
    "8.1.2": "good",
    "8.2.0": "bad",
    "8.2.1": "bad",
    "8.2.2": "good",
    "9.2.0": "good",
    "fork": "good",
}
N = len(scenarios.MATRIX_SCENARIOS)


def fake_outcome(verdict: scenarios.Verdict) -> scenarios.Outcome:
    return scenarios.Outcome(verdict, f"pretend {verdict}")


class TestScenarioHarness:
    def test_unknown_scenario_is_a_key_error(self, tmp_path: Path) -> None:
        with pytest.raises(KeyError, match="no-such"):
            scenarios.run_scenario("no-such", Path(sys.executable), tmp_path / "w")

    def test_non_empty_workdir_is_an_error_verdict(self, tmp_path: Path) -> None:
        (tmp_path / "stale").touch()
        outcome = scenarios.run_scenario("permissions", Path(sys.executable), tmp_path)
        assert outcome.verdict == "error"
        assert "not empty" in outcome.detail

    def test_harness_crash_is_error_never_bad(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def explode(ctx: harness.RunContext) -> scenarios.Outcome:
            raise RuntimeError("harness bug")

        monkeypatch.setitem(
            scenarios.SCENARIOS,
            "explodes",
            scenarios.Scenario("explodes", "", "crashes", explode),
        )
        outcome = scenarios.run_scenario(
            "explodes", Path(sys.executable), tmp_path / "w"
        )
        assert outcome == scenarios.Outcome(
            "error", "harness crashed: RuntimeError: harness bug"
        )

    def test_timeout_is_error_never_bad(self, tmp_path: Path) -> None:
        """A pytest that hangs is killed after the timeout; the verdict is error."""
        hanging = tmp_path / "python"
        hanging.write_text("#!/bin/sh\nexec sleep 60\n")
        hanging.chmod(0o755)
        outcome = scenarios.run_scenario(
            "permissions", hanging, tmp_path / "w", timeout=0.5
        )
        assert outcome.verdict == "error"
        assert "still running after" in outcome.detail

    def test_summary_line_counts(self) -> None:
        run = harness.PytestRun(
            "x", 1, "....\n==== 2 passed, 6 errors, 1 warning in 1.23s ====\n"
        )
        assert run.counts() == {"passed": 2, "error": 6}
        assert harness.PytestRun("x", 0, "8 passed in 0.5s\n").counts() == {"passed": 8}
        assert harness.PytestRun("x", 2, "no summary").counts() == {}

    def test_findings_rank_bad_over_error_over_good(self) -> None:
        findings = harness.Findings()
        assert findings.outcome().verdict == "good"
        findings.errors.append("barrier timed out")
        assert findings.outcome().verdict == "error"
        findings.problems.append("exit 1")
        assert findings.outcome() == scenarios.Outcome(
            "bad", "exit 1; barrier timed out"
        )

    def test_leftovers_are_found_at_any_depth(self, tmp_path: Path) -> None:
        (tmp_path / "pytest-cache-files-abc").mkdir()
        (tmp_path / ".pytest_cache" / "v" / "k").mkdir(parents=True)
        (tmp_path / ".pytest_cache" / "v" / "k" / "pytest-cache-files-1-x").touch()
        found = harness.leftovers(tmp_path)
        assert [p.name for p in found] == [
            "pytest-cache-files-1-x",
            "pytest-cache-files-abc",
        ]

    def test_child_env_drops_pytest_variables(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
        monkeypatch.setenv("PYTHONPATH", "/somewhere/src")
        monkeypatch.setenv(
            "TOX_ENV_DIR", "/repo/.tox/py311"
        )  # moves pytest's cache dir
        env = harness.child_env({"SCENARIO_ROLE": "A"})
        assert not [k for k in env if k.startswith(("PYTEST_", "TOX_"))]
        assert "PYTHONPATH" not in env
        assert env["SCENARIO_ROLE"] == "A"

    def test_a_project_is_copied_whole_with_the_barrier(self, tmp_path: Path) -> None:
        """Later projects replace earlier files; every trial gets the barrier module."""
        harness.write_project(tmp_path, "lastfailed", "nodeids")
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == [
            "barrier",
            "barriers.py",
            "conftest.py",
            "pytest.ini",
            "test_a.py",
            "test_b.py",
        ]
        assert "def test_a_passes" in (tmp_path / "test_a.py").read_text()

    def test_a_real_scenario_gives_a_verdict(self, tmp_path: Path) -> None:
        """umask-flip run by this interpreter: the fork never changes the umask."""
        outcome = scenarios.run_scenario(
            "umask-flip", Path(sys.executable), tmp_path / "w", timeout=120
        )
        assert outcome == scenarios.Outcome("good", "umask never changed")


class TestVersionSelection:
    AVAILABLE = (
        "9.2.0", "9.1.1", "9.0.0", "10.0.0", "9.3.0rc1", "9.2.0.dev3", "8.4.2", "8.2.2",
        "8.2.1", "8.2.0", "8.1.2", "8.1.1", "8.0.2", "7.4.4", "8.10.0", "8.2.0+fork.1",
    )  # fmt: skip

    def test_range_is_8_1_0_to_newest_9_oldest_first_releases_only(self) -> None:
        assert versions.select_versions(list(self.AVAILABLE)) == [
            "8.1.1", "8.1.2", "8.2.0", "8.2.1", "8.2.2", "8.4.2", "8.10.0", "9.0.0", "9.1.1", "9.2.0",
        ]  # fmt: skip

    def test_order_is_numeric_not_lexical(self) -> None:
        assert versions.select_versions(["8.10.0", "8.9.0", "8.1.0"]) == [
            "8.1.0",
            "8.9.0",
            "8.10.0",
        ]

    def test_pre_dev_and_local_versions_are_not_releases(self) -> None:
        for version in (
            "9.3.0rc1",
            "9.2.0.dev3",
            "8.2.0+fork.1",
            "8.2.0b1",
            "8.2.0.post1",
        ):
            assert versions.release_key(version) is None
        assert versions.release_key("8.2.0") == (8, 2, 0)

    def test_pip_index_output_is_parsed(self) -> None:
        output = "pytest (9.2.0)\nAvailable versions: 9.2.0, 9.1.1, 8.1.2\n  INSTALLED: 9.0.3\n"
        assert versions.parse_pip_index(output) == ["9.2.0", "9.1.1", "8.1.2"]
        with pytest.raises(versions.RegistryError):
            versions.parse_pip_index("ERROR: No matching distribution found for pytest")

    def test_default_versions_end_with_fork(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(
            versions, "registry_versions", lambda package="pytest": list(self.AVAILABLE)
        )
        found = versions.default_versions()
        assert found[0] == "8.1.1"
        assert found[-2:] == ["9.2.0", "fork"]


class TestMatrix:
    @pytest.fixture
    def fake_runs(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> list[tuple[str, str]]:
        """Envs and scenario runs replaced by fakes; records (version, scenario) calls."""
        calls: list[tuple[str, str]] = []

        def ensure_env(version: str, *, root: Path, **kwargs: object) -> Path:
            if version == "9.9.9":
                raise envs.EnvError("no such release\nmore")
            return root / version / "bin" / "python"

        def run_scenario(
            name: str, python: Path, workdir: Path, **kwargs: object
        ) -> scenarios.Outcome:
            version = python.parent.parent.name
            calls.append((version, name))
            verdict = MKDIR_VERDICTS[version] if name == "mkdir-race" else "good"
            return fake_outcome(verdict)

        monkeypatch.setattr(envs, "ensure_env", ensure_env)
        monkeypatch.setattr(scenarios, "run_scenario", run_scenario)
        return calls

    def test_json_shape(self, fake_runs: list[tuple[str, str]], tmp_path: Path) -> None:
        out = tmp_path / "matrix.json"
        versions = ",".join(MKDIR_VERDICTS)
        assert (
            matrix.main(
                ["--versions", versions, "--json", str(out), "--root", str(tmp_path)]
            )
            == 0
        )
        document = json.loads(out.read_text())
        assert list(document) == ["results"]
        results = document["results"]
        assert len(results) == len(MKDIR_VERDICTS) * N
        for entry in results:
            assert set(entry) == {"version", "scenario", "verdict", "detail"}
            assert entry["verdict"] in ("good", "bad", "error")
            assert isinstance(entry["detail"], str)
        assert [r["version"] for r in results[::N]] == list(MKDIR_VERDICTS)
        assert [r["scenario"] for r in results[:N]] == list(scenarios.MATRIX_SCENARIOS)
        mkdir = {
            r["version"]: r["verdict"] for r in results if r["scenario"] == "mkdir-race"
        }
        assert mkdir == MKDIR_VERDICTS

    def test_progress_goes_to_stdout(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Progress is not an error, and tox shows stderr in red."""
        report.Progress()("building 8.2.0")
        out, err = capsys.readouterr()
        assert err == ""
        assert out.endswith("s] building 8.2.0\n")

    def test_table_and_summary(
        self,
        fake_runs: list[tuple[str, str]],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        argv = [
            "--versions",
            ",".join(MKDIR_VERDICTS),
            "--scenarios",
            "mkdir-race,torn-read",
            "--root",
            str(tmp_path),
        ]
        assert matrix.main(argv) == 0
        out = capsys.readouterr().out
        assert "mkdir-race: first bad 8.2.0, fixed in 8.2.2; fork good" in out
        assert (
            "torn-read: good in every release tested (8.1.2 to 9.2.0); fork good" in out
        )
        rows = {
            line.split()[0]: line.split()[1:]
            for line in out.splitlines()
            if line[:1].isdigit()
        }
        assert rows["8.2.0"] == ["BAD", "good"]
        assert rows["8.1.2"] == ["good", "good"]
        assert len(fake_runs) == 2 * len(MKDIR_VERDICTS)

    def test_env_failure_makes_error_cells_and_exit_1(
        self, fake_runs: list[tuple[str, str]], tmp_path: Path
    ) -> None:
        out = tmp_path / "m.json"
        assert (
            matrix.main(
                [
                    "--versions",
                    "9.9.9,8.2.0",
                    "--json",
                    str(out),
                    "--root",
                    str(tmp_path),
                ]
            )
            == 1
        )
        results = json.loads(out.read_text())["results"]
        failed = [r for r in results if r["version"] == "9.9.9"]
        assert len(failed) == N
        assert {r["verdict"] for r in failed} == {"error"}
        assert failed[0]["detail"] == "env: no such release"

    @pytest.mark.parametrize(
        ("verdicts", "summary"),
        [
            (
                ["bad", "bad", "bad", "good"],
                "s: bad in every release tested (1 to 3); fork good",
            ),
            (
                ["good", "bad", "bad", "good"],
                "s: first bad 2, still bad in 3; fork good",
            ),
            (
                ["bad", "good", "bad", "bad"],
                "s: first bad 1, fixed in 2; bad again in 3; fork bad",
            ),
            (
                ["good", "error", "good", "error"],
                "s: good in every release tested (1 to 3); error in 2; fork error",
            ),
            (
                ["error", "bad", "error", "good"],
                "s: bad in 2; error in 1, 3; fork good",
            ),
        ],
    )
    def test_summarize(self, verdicts: list[scenarios.Verdict], summary: str) -> None:
        pairs = list(zip(["1", "2", "3", "fork"], verdicts, strict=True))
        assert matrix.summarize("s", pairs) == summary

    @pytest.mark.parametrize(
        "argv",
        [
            ["--scenarios", "mkdir-race,nope"],
            ["--versions", "8.2.0,latest"],
            ["--versions", ","],
        ],
    )
    def test_bad_arguments_exit_2(self, argv: list[str]) -> None:
        assert matrix.main(argv) == 2

    def test_parser_defaults(self) -> None:
        args = matrix.build_parser().parse_args([])
        assert args.versions is None and args.scenarios is None and args.json is None
        assert args.workers == scenarios.DEFAULT_WORKERS
        assert args.jobs >= 1


class TestBisectRun:
    @pytest.mark.parametrize(
        ("verdict", "code"),
        [("good", 0), ("bad", 1), ("error", 125)],
    )
    def test_verdict_exit_codes(self, verdict: scenarios.Verdict, code: int) -> None:
        assert bisect_run.verdict_exit(verdict) == code
        assert (bisect_run.GOOD, bisect_run.BAD, bisect_run.SKIP) == (0, 1, 125)

    @pytest.fixture
    def fake_step(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> dict[str, object]:
        """A bisection step whose work tree, venv, install and scenario are fakes."""
        state: dict[str, object] = {"verdict": "good", "install": None}

        def install(python: Path, top: Path, version: str, **kwargs: object) -> str:
            if state["install"]:
                raise bisect_run.InstallError(str(state["install"]))
            return version

        def run_scenario(
            name: str, python: Path, workdir: Path, **kwargs: object
        ) -> scenarios.Outcome:
            state["scenario"] = name
            return fake_outcome(state["verdict"])  # type: ignore[arg-type]

        monkeypatch.setattr(bisect_run, "work_tree", lambda repo: tmp_path)
        monkeypatch.setattr(bisect_run, "git", lambda repo, *args: "abc1234")
        monkeypatch.setattr(
            bisect_run, "bisect_venv", lambda top, root: tmp_path / "python"
        )
        monkeypatch.setattr(bisect_run, "install_checkout", install)
        monkeypatch.setattr(scenarios, "run_scenario", run_scenario)
        return state

    @pytest.mark.parametrize(
        ("verdict", "code"), [("good", 0), ("bad", 1), ("error", 125)]
    )
    def test_step_exits_with_the_verdicts_code(
        self, fake_step: dict[str, object], verdict: str, code: int
    ) -> None:
        fake_step["verdict"] = verdict
        assert bisect_run.main(["--pretend-version", "8.2.0"]) == code
        assert fake_step["scenario"] == "mkdir-race"

    def test_scenario_option(self, fake_step: dict[str, object]) -> None:
        assert (
            bisect_run.main(["--scenario", "torn-read", "--pretend-version", "8.2.0"])
            == 0
        )
        assert fake_step["scenario"] == "torn-read"

    def test_install_failure_is_skip(self, fake_step: dict[str, object]) -> None:
        fake_step["install"] = "build backend failed"
        assert bisect_run.main(["--pretend-version", "8.2.0"]) == bisect_run.SKIP

    def test_crash_of_the_script_is_skip_never_bad(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        def crash(args: object) -> int:
            raise ZeroDivisionError("oops")

        monkeypatch.setattr(bisect_run, "run", crash)
        assert bisect_run.main([]) == bisect_run.SKIP
        assert "ZeroDivisionError" in capsys.readouterr().err

    def test_usage_error_aborts_the_bisection(self) -> None:
        assert bisect_run.main(["--scenario", "no-such"]) == bisect_run.ABORT
        assert bisect_run.ABORT > 127  # git bisect run stops on codes above 127

    def test_outside_a_work_tree_aborts(self, tmp_path: Path) -> None:
        assert bisect_run.main(["--repo", str(tmp_path)]) == bisect_run.ABORT

    def test_pretend_version_from_tag_announcement_or_fallback(
        self, tmp_path: Path
    ) -> None:
        def git(*args: str) -> str:
            env = {
                **os.environ,
                "GIT_AUTHOR_NAME": "t",
                "GIT_AUTHOR_EMAIL": "t@t",
                "GIT_COMMITTER_NAME": "t",
            }
            env["GIT_COMMITTER_EMAIL"] = "t@t"
            done = subprocess.run(
                ["git", "-C", str(tmp_path), *args],
                env=env,
                check=True,
                capture_output=True,
            )
            return done.stdout.decode().strip()

        git("init", "-q")
        git("commit", "-q", "--allow-empty", "-m", "first")
        commit = git("rev-parse", "--short=9", "HEAD")
        assert bisect_run.pretend_version(tmp_path) == f"0.0.0+g{commit}"
        announce = tmp_path / "doc" / "en" / "announce"
        announce.mkdir(parents=True)
        for name in ("release-8.1.2.rst", "release-8.1.10.rst", "sprint2016.rst"):
            (announce / name).touch()
        assert bisect_run.pretend_version(tmp_path) == f"8.1.10+g{commit}"
        git("tag", "8.2.0.dev0")
        assert bisect_run.pretend_version(tmp_path) == f"8.2.0.dev0+g{commit}"


class TestStress:
    def test_plan_counts_runs_per_scenario(self) -> None:
        plan = stress.plan(["mkdir-race", "torn-read"], 50, ["mkdir-race=200"])
        assert plan == {"mkdir-race": 200, "torn-read": 50}

    @pytest.mark.parametrize("item", ["mkdir-race", "nope=3", "torn-read=x"])
    def test_plan_rejects_bad_overrides(self, item: str) -> None:
        with pytest.raises(stress.UsageError):
            stress.plan(["torn-read"], 1, [item])

    def test_parser_defaults(self) -> None:
        args = stress.build_parser().parse_args([])
        assert (args.version, args.workers, args.runs) == (
            "fork",
            8,
            stress.DEFAULT_RUNS,
        )

    def test_counts_failures_per_scenario(
        self,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        seen: list[tuple[str, int]] = []

        def run_scenario(
            name: str, python: Path, workdir: Path, **kwargs: object
        ) -> scenarios.Outcome:
            seen.append((name, int(kwargs["workers"])))  # type: ignore[call-overload]
            return fake_outcome("bad" if name == "torn-read" else "good")

        monkeypatch.setattr(scenarios, "run_scenario", run_scenario)
        argv = [
            "--python",
            sys.executable,
            "--runs",
            "3",
            "--scenarios",
            "mkdir-race,torn-read",
            "--jobs",
            "1",
        ]
        assert stress.main(argv) == 1
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert lines[1].split() == ["scenario", "trials", "good", "bad", "error"]
        assert lines[2].split() == ["mkdir-race", "3", "3", "0", "0"]
        assert lines[3].split() == ["torn-read", "3", "0", "3", "0"]
        assert "torn-read: 3x pretend bad" in out
        assert ("mkdir-race", 8) in seen


class TestEnvs:
    def test_fork_hash_follows_the_sources(self, tmp_path: Path) -> None:
        (tmp_path / "src").mkdir()
        (tmp_path / "pyproject.toml").write_text("[project]\n")
        (tmp_path / "src" / "m.py").write_text("a = 1\n")
        first = envs.fork_source_hash(tmp_path)
        (tmp_path / "src" / "m.py").write_text("a = 2\n")
        assert envs.fork_source_hash(tmp_path) != first


@pytest.mark.slow
def test_matrix_on_8_2_0_and_fork(tmp_path: Path) -> None:
    """The real thing: mkdir-race is bad on 8.2.0, and the fork is good everywhere."""
    out = tmp_path / "matrix.json"
    subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "matrix.py"),
            "--versions",
            "8.2.0,fork",
            "--json",
            str(out),
        ],
        check=False,
        timeout=1800,
    )
    results = json.loads(out.read_text())["results"]
    verdicts = {
        (r["version"], r["scenario"]): (r["verdict"], r["detail"]) for r in results
    }
    assert verdicts[("8.2.0", "mkdir-race")][0] == "bad", verdicts[
        ("8.2.0", "mkdir-race")
    ]
    fork = {name: v for (version, name), v in verdicts.items() if version == "fork"}
    assert set(fork) == set(scenarios.MATRIX_SCENARIOS)
    assert {name: v for name, v in fork.items() if v[0] != "good"} == {}


def test_fork_spec_can_name_a_base() -> None:
    assert envs.fork_base("fork") is None
    assert envs.fork_base("fork@9.2.0") == "9.2.0"
    assert envs.is_fork("fork@9.2.0") and envs.is_fork("fork")
    assert not envs.is_fork("9.2.0")


class TestEntryScripts:
    """The commands of the README and tox, run as a user runs them, from elsewhere."""

    @pytest.mark.parametrize(
        ("script", "argv", "code", "said"),
        [
            ("matrix.py", ["--versions", "8.2.0,latest"], 2, "not a pytest version"),
            ("stress.py", ["--scenarios", "nope"], 2, "unknown scenarios: nope"),
            ("bisect_run.py", ["--scenario", "nope"], 128, "aborting the bisection"),
            ("mutations.py", ["--base", "0.0.1"], 2, "unsupported base 0.0.1"),
            ("bench.py", ["--rounds", "0"], 2, "must be at least 1"),
            ("envs.py", [], 2, "the following arguments are required"),
        ],
    )
    def test_usage_errors(
        self, tmp_path: Path, script: str, argv: list[str], code: int, said: str
    ) -> None:
        done = subprocess.run(
            [sys.executable, str(SCRIPTS / script), *argv],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == code, done.stderr
        assert said in done.stderr

    def test_bisect_outside_a_work_tree_aborts(self, tmp_path: Path) -> None:
        """``git bisect run python /path/scripts/bisect_run.py`` runs from any directory."""
        done = subprocess.run(
            [
                sys.executable,
                str(SCRIPTS / "bisect_run.py"),
                "--scenario",
                "mkdir-race",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 128, done.stderr
        assert "is not inside a git work tree" in done.stderr
