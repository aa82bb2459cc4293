"""The in-tree build backend: what it refuses, and what the wheel it builds contains."""

from __future__ import annotations

from collections.abc import Iterator
import hashlib
import json
import os
from pathlib import Path
import subprocess
import sys
import venv
import zipfile

import pytest


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
sys.path.insert(0, str(ROOT / "scripts"))

from forktools import mutations  # noqa: E402
import layers  # noqa: E402
import overlay_backend  # noqa: E402
from overlay_backend import BuildError  # noqa: E402
import overlay_merge  # noqa: E402


BASE = "8.2.0"
PIP_TIMEOUT = 600


def fake_bases(monkeypatch: pytest.MonkeyPatch, entry: dict[str, object]) -> None:
    table = {"default": BASE, "bases": {BASE: entry}}
    monkeypatch.setattr(overlay_backend, "_load_bases", lambda: table)


def merge_result(
    replaced: dict[str, str], added: list[str]
) -> overlay_merge.MergeResult:
    return overlay_merge.MergeResult(
        code="", replaced=replaced, added=added, imports_added=[]
    )


class TestRefusals:
    def test_unlisted_base_is_refused(self) -> None:
        with pytest.raises(
            BuildError,
            match=r"pytest 7\.4\.4 is not a supported base; supported: .*8\.2\.0",
        ):
            overlay_backend.get_requires_for_build_wheel({"base": "7.4.4"})

    def test_base_this_python_cannot_run_is_refused_with_the_ones_it_can(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sys, "version_info", (3, 9, 18, "final", 0))
        with pytest.raises(
            BuildError,
            match=r"pytest 9\.2\.0 needs Python 3\.10 or later, this is Python 3\.9; "
            r"the bases Python 3\.9 admits: 8\.2\.0, 8\.2\.1, 8\.2\.2, 8\.3\.5, 8\.4\.2$",
        ):
            overlay_backend._base({"base": "9.2.0"})
        assert overlay_backend._base({"base": "8.4.2"}) == "8.4.2"

    def test_default_base_is_pinned_with_triple_equals(self) -> None:
        assert overlay_backend.get_requires_for_build_wheel(None) == [
            f"pytest==={BASE}"
        ]

    def test_upstream_definition_that_changed_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fake_bases(monkeypatch, {"replaces": {"Cache.set": "aaaa"}, "keep": {}})
        with pytest.raises(
            BuildError,
            match=r"upstream's Cache\.set in 8\.2\.0 differs .*fingerprint bbbb, recorded aaaa",
        ):
            overlay_backend._check_fingerprints(
                BASE, merge_result({"Cache.set": "bbbb"}, [])
            )

    def test_reviewed_variant_from_a_git_ref_is_accepted(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        entry: dict[str, object] = {
            "replaces": {"Cache.set": "aaaa"},
            "keep": {},
            "also_reviewed": {"Cache.set": {"bbbb": "main"}},
        }
        fake_bases(monkeypatch, entry)
        overlay_backend._check_fingerprints(
            BASE, merge_result({"Cache.set": "bbbb"}, [])
        )
        with pytest.raises(BuildError, match="fingerprint cccc, recorded aaaa"):
            overlay_backend._check_fingerprints(
                BASE, merge_result({"Cache.set": "cccc"}, [])
            )

    def test_layer_replacing_upstream_without_saying_so_is_refused(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        fake_bases(monkeypatch, {"replaces": {"Cache.set": "aaaa"}, "keep": {}})
        path = tmp_path / "01_typo.py"
        path.write_text(
            '"""Typo.\n\nFix: typo\nBug: -\nAffects: -\nNeeds: -\n'
            'Replaces: Cache.sett\n"""\n\n\nclass Cache:\n'
            "    def set(self) -> None:\n        pass\n"
        )
        layer = layers.parse_layer(path)
        selection = layers.select(
            [layer], None, base=BASE, not_needed={}, extra_needs={}
        )
        with pytest.raises(BuildError) as raised:
            overlay_backend._check_fingerprints(
                BASE, merge_result({"Cache.set": "aaaa"}, []), selection
            )
        assert "names Cache.sett in Replaces but does not define it" in str(
            raised.value
        )
        assert "replaces upstream's Cache.set without naming it" in str(raised.value)

    def test_unreviewed_replacement_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fake_bases(monkeypatch, {"replaces": {}, "keep": {}})
        with pytest.raises(
            BuildError, match=r"replaces Cache\.get, which is not recorded"
        ):
            overlay_backend._check_fingerprints(
                BASE, merge_result({"Cache.get": "cccc"}, [])
            )

    def test_merge_errors_stop_the_build(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake_bases(monkeypatch, {"replaces": {}, "keep": {}})
        overlay = "def f():\n    return nowhere\n"
        monkeypatch.setattr(
            overlay_backend, "_overlay_for", lambda base, selection: overlay
        )
        with pytest.raises(BuildError, match="undefined names: nowhere"):
            overlay_backend.merged_module(
                BASE, "import os\n\n\ndef g():\n    return os\n"
            )

    def test_editable_install_explains_the_rebuild_loop(self, tmp_path: Path) -> None:
        with pytest.raises(BuildError, match=r"(?s)not possible.*pip install \."):
            overlay_backend.build_editable(str(tmp_path))

    @pytest.mark.slow
    def test_the_command_the_editable_message_gives_prints_the_merged_module(
        self, tmp_path: Path
    ) -> None:
        """The message's command works: it prints the module the build would ship."""
        (line,) = [
            line.strip()
            for line in overlay_backend.EDITABLE_MESSAGE.splitlines()
            if "overlay_backend.py" in line
        ]
        assert line.startswith("python backend/overlay_backend.py --base 9.2.0")
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
        result = subprocess.run(
            [
                sys.executable,
                "backend/overlay_backend.py",
                "--base",
                "9.2.0",
                "--fixes",
                "atomic-set",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        compile(result.stdout, "cacheprovider.py", "exec")
        assert (
            "def _write_atomic(" in result.stdout
            and "def _make_cachedir(" in result.stdout
        )
        assert "def _sweep_orphans(" not in result.stdout  # Not selected.

    def test_frozen_base_wins_and_conflicts_are_refused(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        frozen = tmp_path / "FROZEN_BASE"
        frozen.write_text(f"{BASE}\n")
        monkeypatch.setattr(overlay_backend, "FROZEN_BASE_FILE", frozen)
        assert overlay_backend._base(None) == BASE
        with pytest.raises(BuildError, match=r"this sdist was made for base 8\.2\.0"):
            overlay_backend._base({"base": "9.2.0"})


class TestRewrites:
    def test_metadata_changes_only_the_version(self) -> None:
        metadata = (
            b"Metadata-Version: 2.1\nName: pytest\nVersion: 8.2.0\n"
            b"Requires-Dist: pluggy\n\nVersion: 8.2.0 in text\n"
        )
        new = overlay_backend._rewrite_metadata(metadata, BASE, "8.2.0+fork.1")
        assert new == metadata.replace(
            b"Version: 8.2.0\n", b"Version: 8.2.0+fork.1\n", 1
        )

    def test_version_module(self) -> None:
        source = "__version__ = version = '8.2.0'\n__version_tuple__ = version_tuple = (8, 2, 0)\n"
        new = overlay_backend._rewrite_version_module(source, BASE, "8.2.0+fork.ab12")
        assert new == (
            "__version__ = version = '8.2.0+fork.ab12'\n"
            "__version_tuple__ = version_tuple = (8, 2, 0, 'fork', 'ab12')\n"
        )

    def test_label_follows_the_overlay(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        before = overlay_backend._label()
        original = overlay_backend.label_inputs()
        first = original[0]
        changed = overlay_backend.ROOT / "build" / "label-test" / first.name
        changed.parent.mkdir(parents=True, exist_ok=True)
        changed.write_bytes(first.read_bytes() + b"\n# changed\n")
        try:
            monkeypatch.setattr(
                overlay_backend, "label_inputs", lambda: [changed, *original[1:]]
            )
            assert overlay_backend._label() != before
        finally:
            changed.unlink()

    def test_label_names_a_partial_selection(self) -> None:
        selection = overlay_backend._selection(BASE, {"fixes": "publish-race"})
        version = overlay_backend.version_for(BASE, selection)
        assert version == f"{BASE}+{overlay_backend._label()}.publishrace"
        full = overlay_backend._selection(BASE, None)
        assert overlay_backend.version_for(BASE, full) == overlay_backend.version_for(
            BASE
        )


def pip(
    python: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
        env=env,
        check=False,
    )


def build_wheel(into: Path, *extra: str) -> Path:
    into.mkdir()
    result = pip(
        Path(sys.executable),
        "wheel",
        "--no-deps",
        "--no-cache-dir",
        "-w",
        str(into),
        *extra,
        str(ROOT),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = into.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheels(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, Path, Path]]:
    """Two builds of this checkout, and upstream's own wheel of the base."""
    root = tmp_path_factory.mktemp("wheels")
    first, second = build_wheel(root / "a"), build_wheel(root / "b")
    (root / "upstream").mkdir()
    result = pip(
        Path(sys.executable),
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "-d",
        str(root / "upstream"),
        f"pytest==={BASE}",
    )
    assert result.returncode == 0, result.stderr
    (upstream,) = (root / "upstream").glob("*.whl")
    yield first, second, upstream


@pytest.mark.slow
class TestWheel:
    def test_two_builds_are_identical(self, wheels: tuple[Path, Path, Path]) -> None:
        first, second, _ = wheels
        assert first.name == second.name
        assert (
            hashlib.sha256(first.read_bytes()).digest()
            == hashlib.sha256(second.read_bytes()).digest()
        )

    def test_only_the_expected_files_differ_from_upstream(
        self, wheels: tuple[Path, Path, Path]
    ) -> None:
        ours, _, upstream = wheels
        version = ours.name.split("-")[1]
        assert version.startswith(f"{BASE}+fork.")
        with zipfile.ZipFile(ours) as z:
            mine = {n: z.read(n) for n in z.namelist()}
        with zipfile.ZipFile(upstream) as z:
            theirs = {
                n.replace(
                    f"pytest-{BASE}.dist-info", f"pytest-{version}.dist-info"
                ): z.read(n)
                for n in z.namelist()
            }
        info = f"pytest-{version}.dist-info"
        changed = {n for n in mine.keys() & theirs.keys() if mine[n] != theirs[n]}
        assert changed == {
            "_pytest/cacheprovider.py",
            "_pytest/_version.py",
            f"{info}/METADATA",
            f"{info}/WHEEL",
            f"{info}/RECORD",
        }
        assert mine.keys() - theirs.keys() == {f"{info}/LICENSE.cache-overlay"}
        assert theirs.keys() - mine.keys() == set()
        assert mine[f"{info}/METADATA"] == theirs[f"{info}/METADATA"].replace(
            f"Version: {BASE}\n".encode(), f"Version: {version}\n".encode(), 1
        )


@pytest.fixture(scope="module")
def minimal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The minimal fork: base 8.2.0 with the #12381 layer alone."""
    return build_wheel(
        tmp_path_factory.mktemp("minimal") / "w",
        "--config-settings",
        "fixes=publish-race",
    )


@pytest.mark.slow
def test_minimal_fork_differs_from_upstream_only_in_the_publish_path(
    wheels: tuple[Path, Path, Path], minimal: Path
) -> None:
    """``-C fixes=publish-race`` on 8.2.0: the #12381 fix and nothing else."""
    assert minimal.name.split("-")[1].endswith(".publishrace")
    _, _, upstream = wheels
    with zipfile.ZipFile(minimal) as z:
        ours = z.read("_pytest/cacheprovider.py").decode()
    with zipfile.ZipFile(upstream) as z:
        theirs = z.read("_pytest/cacheprovider.py").decode()
    mine, stock = (
        overlay_merge.definition_fingerprints(ours),
        overlay_merge.definition_fingerprints(theirs),
    )
    changed = {
        name for name in mine.keys() | stock.keys() if mine.get(name) != stock.get(name)
    }
    ensure = "Cache._ensure_cache_dir_and_supporting_files"
    publish = {
        "CACHEDIR_FILES",
        "_make_cachedir",
        "_make_private_dir",
        "_create_private",
        "_lost_publish_race",
    }
    naming = {"_owner_id", "_name_start", "_private_leaf"}
    constants = {
        "_PRIVATE_PREFIX",
        "_UNIQUE_NAME_ATTEMPTS",
        "_NO_OWNER_ID",
        "_HEX_TO_LETTERS",
        "_T",
    }
    assert changed == {"Cache", ensure, *publish, *naming, *constants}
    rest = overlay_merge.without_definitions(
        ours, [ensure, *publish, *naming, *constants]
    )
    stock_rest = overlay_merge.without_definitions(theirs, [ensure])

    def imports(text: str) -> set[str]:
        return {
            line for line in text.splitlines() if line.startswith(("import ", "from "))
        }

    assert imports(rest) - imports(stock_rest) == {
        "from __future__ import annotations",
        "import errno",
        "import functools",
        "import hashlib",
        "import random",
        "import shutil",
        "import sys",
        "from collections.abc import Callable",
        "from typing import TypeVar",
    }
    assert imports(stock_rest) - imports(rest) == {"import tempfile"}

    def code(text: str) -> list[str]:
        return [
            line for line in text.splitlines() if line and line not in imports(text)
        ]

    assert code(rest) == code(stock_rest)


@pytest.mark.slow
def test_minimal_fork_passes_the_12381_regression_test(
    minimal: Path, tmp_path: Path
) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    result = pip(python, "install", "--quiet", str(minimal), "pytest-xdist==3.8.0")
    assert result.returncode == 0, result.stdout + result.stderr
    run = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            "--layer=publish-race",
            *mutations.layer_test_files(),
            "-p",
            "no:cacheprovider",
            "-rA",
            # Modules importing what only later layers define cannot load here.
            "--continue-on-collection-errors",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
        check=False,
    )
    regression_test = (
        "PASSED testing/test_cacheprovider_races.py::TestConcurrentCreation::"
        "test_workers_publishing_the_cache_dir_at_once_all_succeed_with_plain_modes"
    )
    summary = run.stdout.strip().splitlines()[-1]
    assert regression_test in run.stdout and " passed" in summary, (
        run.stdout + run.stderr
    )
    assert " failed" not in summary, run.stdout + run.stderr


def user_venv(path: Path) -> Path:
    """A project's venv that already has a newer pytest and pytest-xdist."""
    venv.create(path, with_pip=True)
    python = path / "bin" / "python"
    result = pip(python, "install", "--quiet", "pytest>=9", "pytest-xdist==3.8.0")
    assert result.returncode == 0, result.stderr
    return python


@pytest.mark.slow
@pytest.mark.parametrize("how", ["path", "git-url"])
def test_install_from_a_clean_clone_replaces_pytest(
    clone: Path, tmp_path: Path, how: str
) -> None:
    python = user_venv(tmp_path / "venv")
    spec = str(clone) if how == "path" else f"pytest @ git+file://localhost{clone}"
    result = pip(python, "install", "--no-cache-dir", spec)
    assert result.returncode == 0, result.stdout + result.stderr
    bindir = python.parent
    for command in (
        [str(python), "-m", "pytest"],
        [str(bindir / "pytest")],
        [str(bindir / "py.test")],
    ):
        out = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, check=True
        )
        assert f"pytest {BASE}+fork." in out.stdout + out.stderr
    assert pip(python, "check").returncode == 0
    shim = subprocess.run(
        [str(python), "-c", "import py; print(py.path.local('.'))"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert shim.returncode == 0, shim.stderr
    dist = json.loads(pip(python, "list", "--format=json").stdout)
    assert {d["name"].lower(): d["version"] for d in dist}["pytest"].startswith(
        f"{BASE}+fork."
    )


@pytest.mark.slow
def test_editable_install_fails_with_the_explanation(
    clone: Path, tmp_path: Path
) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    venv.create(python.parent.parent, with_pip=True)
    result = pip(python, "install", "--no-cache-dir", "-e", str(clone))
    assert result.returncode != 0
    assert "Rebuild and reinstall instead" in result.stdout + result.stderr


def test_sdist_holds_only_our_files_and_freezes_the_base(tmp_path: Path) -> None:
    name = overlay_backend.build_sdist(str(tmp_path))
    import tarfile

    with tarfile.open(tmp_path / name) as tf:
        names = sorted(m.name.split("/", 1)[1] for m in tf.getmembers())
        frozen = tf.extractfile(f"{name[: -len('.tar.gz')]}/FROZEN_BASE")
        assert frozen is not None and frozen.read() == f"{BASE}\n".encode()
    assert names == sorted([*overlay_backend.sdist_files(), "FROZEN_BASE", "PKG-INFO"])
    assert name == f"pytest-{overlay_backend.version_for(BASE)}.tar.gz"
