"""The merge-by-name of the overlay into upstream's module, on small before/after strings."""

from __future__ import annotations

from pathlib import Path
import sys
import textwrap

import pytest


sys.path.insert(0, str(Path(__file__).parent.parent / "backend"))

from overlay_merge import merge
from overlay_merge import MergeError
from overlay_merge import undefined_names
from overlay_merge import without_definitions


UPSTREAM = '''\
"""Upstream module."""

# A comment above the imports.
import json
import os
from typing import Dict

from _pytest.config import Config


LIMIT = 1


def helper(x: int) -> int:
    return x + LIMIT


class Thing:
    """A class."""

    size = 1

    def __init__(self, config: Config) -> None:
        self.config = config

    def save(self) -> Dict[str, int]:
        return json.loads(os.sep)
'''


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_replaces_and_adds_by_name() -> None:
    overlay = dedent(
        '''
        """Overlay docstring, not merged."""

        from __future__ import annotations

        import errno


        NEW_LIMIT = 2


        def helper(x: int) -> int:
            return x * NEW_LIMIT


        class Thing:
            def save(self) -> dict[str, int]:
                return {"errno": errno.EEXIST}

            def extra(self) -> None:
                pass
        '''
    )
    result = merge(UPSTREAM, overlay)

    assert result.code == dedent(
        '''
        """Upstream module."""

        # A comment above the imports.
        from __future__ import annotations

        import errno

        from _pytest.config import Config


        LIMIT = 1

        NEW_LIMIT = 2


        def helper(x: int) -> int:
            return x * NEW_LIMIT


        class Thing:
            """A class."""

            size = 1

            def __init__(self, config: Config) -> None:
                self.config = config

            def save(self) -> dict[str, int]:
                return {"errno": errno.EEXIST}

            def extra(self) -> None:
                pass
        '''
    )
    assert sorted(result.replaced) == ["Thing.save", "helper"]
    assert result.added == ["NEW_LIMIT", "Thing.extra"]
    # json, os and Dict were used only by the replaced definitions: their
    # imports go with them, as upstream's linters would demand.
    assert result.imports_added == [
        "from __future__ import annotations",
        "import errno",
    ]


def test_new_definitions_go_before_their_first_user_and_hooks_after_configure() -> None:
    """The merged module reads top-down: each helper next to its user, by topic."""
    upstream = dedent(
        """
        import os


        def pytest_configure(config):
            config.thing = Thing()


        def cache(request):
            return request.config.thing


        class Thing:
            def get(self):
                return 1
        """
    )
    overlay = dedent(
        """
        from __future__ import annotations

        # Why a limit.
        _LIMIT = 3


        def _step() -> int:
            return _LIMIT


        def _unused_elsewhere() -> int:
            return _step()


        class Thing:
            def _cached(self) -> int:
                return _unused_elsewhere()

            def get(self) -> int:
                return self._cached()

            # Its own comment.
            def set(self) -> None:
                pass


        def pytest_unconfigure(config) -> None:
            pass
        """
    )
    code = merge(upstream, overlay).code
    order = [
        line.strip()
        for line in code.splitlines()
        if line.strip().startswith(("def ", "class ", "_LIMIT", "# "))
    ]
    assert order == [
        "def pytest_configure(config):",
        "def pytest_unconfigure(config) -> None:",
        "def cache(request):",
        "# Why a limit.",
        "_LIMIT = 3",
        "def _step() -> int:",
        "def _unused_elsewhere() -> int:",
        "class Thing:",
        "def _cached(self) -> int:",
        "def get(self) -> int:",
        "# Its own comment.",
        "def set(self) -> None:",
    ]


def test_a_replacement_keeps_its_own_comment() -> None:
    upstream = (
        "import os\n\nX = 1\n\n# Upstream's comment.\ndef helper():\n    return 1\n"
    )
    overlay = "import os\n\n# Ours, which says why.\ndef helper():\n    return os.sep\n"
    code = merge(upstream, overlay).code
    assert "# Ours, which says why." in code and "Upstream's comment" not in code
    bare = merge(upstream, "import os\n\ndef helper():\n    return os.sep\n").code
    assert "# Upstream's comment." in bare


def test_merging_twice_equals_merging_once() -> None:
    overlay = dedent(
        """
        import errno
        import abc


        def new() -> int:
            return errno.EEXIST


        class Thing:
            def save(self) -> int:
                return new()
        """
    )
    once = merge(UPSTREAM, overlay).code
    assert merge(once, overlay).code == once


def test_new_definitions_are_spaced_as_ruff_formats_them() -> None:
    """Two blank lines around a top-level function, also before a new constant's comment."""
    upstream = dedent(
        """
        import os
        X = 1


        def user():
            return _after() + Y
        Y = 2
        """
    )
    overlay = dedent(
        """
        import os


        def _helper() -> int:
            return 1

        # Why 2.
        _LIMIT = 2


        def _after() -> int:
            return _helper() + _LIMIT
        """
    )
    assert merge(upstream, overlay).code == dedent(
        """
        import os
        X = 1


        def _helper() -> int:
            return 1


        # Why 2.
        _LIMIT = 2


        def _after() -> int:
            return _helper() + _LIMIT


        def user():
            return _after() + Y
        Y = 2
        """
    )


def test_fingerprint_identifies_upstreams_definition() -> None:
    overlay = "def helper(x: int) -> int:\n    return x\n"
    first = merge(UPSTREAM, overlay).replaced["helper"]
    edited = UPSTREAM.replace("return x + LIMIT", "return x - LIMIT")
    assert merge(edited, overlay).replaced["helper"] != first
    reformatted = UPSTREAM.replace("return x + LIMIT", "return x + LIMIT   ")
    assert merge(reformatted, overlay).replaced["helper"] == first


def test_imports_land_in_isort_sections() -> None:
    overlay = "import secrets\nfrom _pytest.main import Session\nimport pluggy\nimport _pytest\n"
    code = merge(
        UPSTREAM,
        overlay
        + "\n\ndef use() -> object:\n    return (secrets, Session, pluggy, _pytest)\n",
    ).code
    imports = code[code.index("import json") : code.index("LIMIT = 1")].rstrip()
    assert (
        imports
        == dedent(
            """
        import json
        import os
        import secrets
        from typing import Dict

        import pluggy

        import _pytest
        from _pytest.config import Config
        from _pytest.main import Session
        """
        ).rstrip()
    )


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        pytest.param("if True:\n    X = 1\n", "top-level 'if' block", id="if-block"),
        pytest.param(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\n",
            "'if' block",
            id="type-checking",
        ),
        pytest.param(
            "def f() -> None: ...\ndef f() -> None: ...\n",
            "defines 'f' twice",
            id="duplicate-function",
        ),
        pytest.param(
            "class Thing:\n    @property\n    def p(self) -> int: ...\n"
            "    @p.setter\n    def p(self, v: int) -> None: ...\n",
            "Thing.p twice",
            id="property-setter",
        ),
        pytest.param(
            "class Thing(object):\n    def save(self) -> None: ...\n",
            "write it bare",
            id="class-bases",
        ),
        pytest.param(
            'class Thing:\n    """Doc."""\n    x = 1\n',
            "has a docstring",
            id="class-docstring",
        ),
        pytest.param(
            "class Thing:\n    new_field: int = 0\n",
            "new annotated class attributes",
            id="dataclass-field",
        ),
        pytest.param(
            "print('side effect')\n", "unsupported construct", id="expression"
        ),
        pytest.param("from os import *\n", "star import", id="star-import"),
        pytest.param(
            "def helper(x):\n    return undefined_thing(x)\n",
            "undefined names: undefined_thing",
            id="undefined",
        ),
        pytest.param(
            "class helper:\n    x = 1\n",
            "non-class upstream definition",
            id="kind-change",
        ),
        pytest.param("import os.path\n", "dotted import", id="dotted-import"),
        pytest.param(
            "LIMIT = 2\ndef LIMIT() -> None: ...\n", "twice", id="duplicate-name"
        ),
    ],
)
def test_rejections(overlay: str, message: str) -> None:
    with pytest.raises(MergeError, match=message):
        merge(UPSTREAM, overlay)


def test_without_definitions_drops_what_a_base_keeps() -> None:
    overlay = dedent(
        """
        X = 1


        def f() -> int:
            return X


        class Thing:
            def a(self) -> None: ...

            def b(self) -> None: ...
        """
    )
    kept = without_definitions(overlay, ["X", "Thing.a"])
    assert "X = 1" not in kept and "def a" not in kept
    assert "def f" in kept and "def b" in kept
    assert "class Thing" not in without_definitions(overlay, ["Thing.a", "Thing.b"])
    with pytest.raises(MergeError, match="does not define it"):
        without_definitions(overlay, ["Nope"])


def test_undefined_names_sees_through_scopes() -> None:
    import libcst

    module = libcst.parse_module(
        "import os\n\ndef f(a):\n    return os.sep + a + b + len(c)\n"
    )
    assert undefined_names(module) == ["b", "c"]
