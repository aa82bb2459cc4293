"""The layer series: headers, selection per base, folding into one overlay."""

from __future__ import annotations

from pathlib import Path
import sys

import pytest


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))

import layers  # noqa: E402


def write_layer(
    folder: Path,
    number: int,
    fix: str,
    body: str,
    *,
    needs: str = "-",
    replaces: str = "-",
) -> Path:
    path = folder / f"{number:02d}_{fix.replace('-', '_')}.py"
    path.write_text(
        f'"""Layer {fix}.\n\nFix: {fix}\nBug: -\nAffects: -\nNeeds: {needs}\n'
        f'Replaces: {replaces}\n"""\n\n\n{body}'
    )
    return path


@pytest.fixture
def series(tmp_path: Path) -> list[layers.Layer]:
    write_layer(tmp_path, 1, "first", "def helper() -> int:\n    return 1\n")
    write_layer(
        tmp_path,
        2,
        "second",
        "def uses() -> int:\n    return helper()\n\n\nclass Cache:\n"
        "    def set(self) -> None:\n        pass\n",
        needs="first",
        replaces="Cache.set",
    )
    write_layer(
        tmp_path,
        3,
        "third",
        "class Cache:\n    def other(self) -> None:\n        pass\n",
        needs="second",
    )
    write_layer(tmp_path, 4, "alone", "ALONE = 1\n")
    return layers.load_layers(tmp_path)


class TestHeaders:
    def test_fields_are_read(self, series: list[layers.Layer]) -> None:
        second = series[1]
        assert (second.number, second.name, second.needs, second.replaces) == (
            2,
            "second",
            ("first",),
            ("Cache.set",),
        )
        assert series[1].defines == ["uses", "Cache.set"]

    def test_missing_field_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "01_bad.py").write_text('"""Bad.\n\nFix: bad\n"""\n')
        with pytest.raises(layers.LayerError, match="header lacks Bug, Affects"):
            layers.load_layers(tmp_path)

    def test_needing_a_later_layer_is_refused(self, tmp_path: Path) -> None:
        write_layer(tmp_path, 1, "early", "X = 1\n", needs="late")
        write_layer(tmp_path, 2, "late", "Y = 1\n")
        with pytest.raises(
            layers.LayerError, match="needs 'late', which is not an earlier"
        ):
            layers.load_layers(tmp_path)

    @pytest.mark.parametrize(
        ("body", "replaces", "name"),
        [
            ("def helper() -> int:\n    return 2\n", "-", "helper"),
            (
                "class Cache:\n    def set(self) -> None:\n        pass\n",
                "-",
                "Cache.set",
            ),
            ("def other() -> None:\n    pass\n", "helper", "helper"),
        ],
        ids=["function", "class member", "named in Replaces"],
    )
    def test_defining_what_another_layer_defines_is_refused(
        self,
        series: list[layers.Layer],
        tmp_path: Path,
        body: str,
        replaces: str,
        name: str,
    ) -> None:
        """Each layer owns its definitions: a fix of a fix goes into the layer it fixes."""
        write_layer(tmp_path, 5, "redefines", body, needs="second", replaces=replaces)
        with pytest.raises(
            layers.LayerError,
            match=rf"05_redefines.py defines {name} again, which 0[12]_\w+.py defines",
        ):
            layers.load_layers(tmp_path)

    def test_the_real_series_loads(self) -> None:
        names = [layer.name for layer in layers.load_layers()]
        assert names[0] == "publish-race"
        assert len(names) == len(set(names))


class TestSelection:
    def test_dependencies_are_pulled_in(self, series: list[layers.Layer]) -> None:
        selection = layers.select(
            series, ["third"], base="1.0", not_needed={}, extra_needs={}
        )
        assert [layer.name for layer in selection.layers] == [
            "first",
            "second",
            "third",
        ]
        assert selection.label == ".third"
        assert any("pulled in" in note for note in selection.notes)

    def test_a_fix_the_base_has_is_skipped_unless_needed(
        self, series: list[layers.Layer]
    ) -> None:
        alone = layers.select(
            series,
            ["alone", "first"],
            base="1.0",
            not_needed={"first": "in 1.0"},
            extra_needs={},
        )
        assert [layer.name for layer in alone.layers] == ["alone"]
        groundwork = layers.select(
            series,
            ["second"],
            base="1.0",
            not_needed={"first": "in 1.0"},
            extra_needs={},
        )
        assert [layer.name for layer in groundwork.layers] == ["first", "second"]

    def test_nothing_left_is_refused(self, series: list[layers.Layer]) -> None:
        with pytest.raises(layers.LayerError, match="nothing to build"):
            layers.select(
                series, ["alone"], base="1.0", not_needed={"alone": "x"}, extra_needs={}
            )

    def test_unknown_fix_is_refused_with_the_list(
        self, series: list[layers.Layer]
    ) -> None:
        with pytest.raises(
            layers.LayerError, match="unknown fix 'nope'; the fixes are: first"
        ):
            layers.select(series, ["nope"], base="1.0", not_needed={}, extra_needs={})

    def test_base_specific_needs(self, series: list[layers.Layer]) -> None:
        selection = layers.select(
            series,
            ["alone"],
            base="1.0",
            not_needed={},
            extra_needs={"alone": ["first"]},
        )
        assert [layer.name for layer in selection.layers] == ["first", "alone"]

    @pytest.mark.parametrize(
        ("setting", "expected"),
        [
            (None, None),
            ("all", None),
            ("a,b", ["a", "b"]),
            (["a", "b,c"], ["a", "b", "c"]),
        ],
    )
    def test_config_setting(self, setting: object, expected: list[str] | None) -> None:
        assert layers.requested_fixes(setting) == expected


class TestCombine:
    def test_layers_fold_into_one_overlay(self, series: list[layers.Layer]) -> None:
        combined = layers.combine(series)
        for text in (
            "return 1",
            "return helper()",
            "def set",
            "def other",
            "ALONE = 1",
        ):
            assert text in combined
