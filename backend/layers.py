"""The overlay as an ordered series of layers, one per fix.

Each file ``src/_pytest/cacheprovider/NN_<fix>.py`` is a partial module (see
``overlay_merge``) whose docstring opens with a header in the spirit of
Debian's DEP-3 patch headers::

    Fix: publish-race
    Bug: #12381 (closed; fixed upstream in 8.2.2 ...)
    Affects: 8.2.0, 8.2.1
    Needs: -
    Replaces: Cache._ensure_cache_dir_and_supporting_files

Each layer owns the definitions it writes: no layer defines again what another
layer defined (the series is refused), so a layer is read, reviewed and left
out on its own.  ``Needs`` names the earlier layers whose definitions it uses;
``Replaces`` the upstream definitions it replaces, which the build checks
against each base.  What a layer adds is read off the layer itself.

The selection (the PEP 517 config setting ``fixes``) is resolved per base
release: what a selected layer needs is pulled in, and a layer whose fix the
base already has (``not_needed`` in ``bases.json``) is skipped unless a
selected layer builds on it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import hashlib
from pathlib import Path
import re

import overlay_merge


LAYERS_DIR = (
    Path(__file__).resolve().parent.parent / "src" / "_pytest" / "cacheprovider"
)
LAYER_FILE = re.compile(r"^(\d\d)_([a-z0-9_]+)\.py$")
HEADER_FIELDS = ("Fix", "Bug", "Affects", "Needs", "Replaces")
ALL = "all"
# Longest selection suffix spelt out in the version (wheel file names stay short).
MAX_LABEL = 60


class LayerError(Exception):
    """A layer or a selection of layers that the build cannot use."""


@dataclasses.dataclass(frozen=True)
class Layer:
    """One fix: its header fields and its source."""

    number: int
    name: str
    path: Path
    summary: str
    bug: str
    affects: str
    needs: tuple[str, ...]
    replaces: tuple[str, ...]
    source: str

    @property
    def defines(self) -> list[str]:
        """The qualified names this layer defines (``name`` or ``Class.member``).

        A class in a layer is partial: its members are what it defines.
        """
        names: list[str] = []
        for node in ast.parse(self.source).body:
            if isinstance(node, ast.ClassDef):
                names.extend(f"{node.name}.{n}" for n in _assigned(node.body))
            else:
                names.extend(_assigned([node]))
        return names


def _assigned(nodes: Iterable[ast.stmt]) -> list[str]:
    """Names that functions and plain assignments among ``nodes`` define."""
    names = []
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names.extend(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names


@dataclasses.dataclass(frozen=True)
class Selection:
    """The layers to merge for one base, in order, and what the resolution did."""

    layers: list[Layer]
    requested: list[str]
    notes: list[str]
    complete: bool

    available: list[str] = dataclasses.field(default_factory=list)

    @property
    def label(self) -> str:
        """The version label's suffix naming a partial selection ('' for all).

        The requested fixes, or ``without`` and the layers left out when that
        is shorter (all but one layer); a selection too long to name in a file name is
        named by a hash of it.
        """
        if self.complete:
            return ""
        named = [name.replace("-", "") for name in self.requested]
        merged = {layer.name for layer in self.layers}
        others = [
            name.replace("-", "") for name in self.available if name not in merged
        ]
        if others and len(others) < len(named):
            named = ["without", *others]
        label = "".join("." + name for name in named)
        if len(label) > MAX_LABEL:
            digest = hashlib.sha256(",".join(sorted(self.requested)).encode())
            label = ".selection" + digest.hexdigest()[:8]
        return label


def _names(field: str) -> tuple[str, ...]:
    field = field.strip()
    if field in ("", "-"):
        return ()
    return tuple(part.strip() for part in field.split(",") if part.strip())


def parse_layer(path: Path) -> Layer:
    """Read one layer file and its header."""
    match = LAYER_FILE.match(path.name)
    if match is None:
        raise LayerError(f"{path.name}: a layer file is named NN_<fix>.py")
    source = path.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source, filename=str(path)))
    if not docstring:
        raise LayerError(f"{path.name}: a layer opens with a docstring and its header")
    lines = docstring.splitlines()
    fields: dict[str, str] = {}
    last = None
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep and key in HEADER_FIELDS:
            fields[key] = value.strip()
            last = key
        elif last is not None and line.startswith("  ") and line.strip():
            fields[last] += " " + line.strip()  # A field continued, indented.
        else:
            last = None
    missing = [key for key in HEADER_FIELDS if key not in fields]
    if missing:
        raise LayerError(f"{path.name}: header lacks {', '.join(missing)}")
    return Layer(
        number=int(match.group(1)),
        name=fields["Fix"],
        path=path,
        summary=lines[0],
        bug=fields["Bug"],
        affects=fields["Affects"],
        needs=_names(fields["Needs"]),
        replaces=_names(fields["Replaces"]),
        source=source,
    )


def load_layers(directory: Path = LAYERS_DIR) -> list[Layer]:
    """Every layer in ``directory``, in order; refuses an inconsistent series.

    Refused: two layers fixing one bug, a ``Needs`` that is not an earlier
    layer, and a layer defining (or replacing) what another layer defined.
    """
    layers = [parse_layer(p) for p in sorted(directory.iterdir()) if p.suffix == ".py"]
    seen: dict[str, Layer] = {}
    owner: dict[str, Layer] = {}
    for layer in layers:
        if layer.name in seen:
            raise LayerError(
                f"{layer.path.name} and {seen[layer.name].path.name} both fix {layer.name!r}"
            )
        for need in layer.needs:
            if need not in seen:
                raise LayerError(
                    f"{layer.path.name} needs {need!r}, which is not an earlier layer"
                )
        for name in (*layer.defines, *layer.replaces):
            first = owner.get(name)
            if first is not None and first is not layer:
                raise LayerError(
                    f"{layer.path.name} defines {name} again, which {first.path.name} "
                    "defines: fold the change into that layer (each layer owns its definitions)"
                )
            owner[name] = layer
        seen[layer.name] = layer
    if not layers:
        raise LayerError(f"no layers in {directory}")
    return layers


def requested_fixes(setting: object) -> list[str] | None:
    """The ``fixes`` config setting as a list of names (None: all)."""
    if setting is None:
        return None
    values: Iterable[object] = setting if isinstance(setting, list) else [setting]
    names: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise LayerError(f"config setting 'fixes' must be a string, got {value!r}")
        names.extend(n.strip() for n in value.split(",") if n.strip())
    if not names or names == [ALL]:
        return None
    if ALL in names:
        raise LayerError("config setting 'fixes': 'all' cannot be combined with names")
    return names


def select(
    layers: Sequence[Layer],
    requested: Sequence[str] | None,
    *,
    base: str,
    not_needed: Mapping[str, str],
    extra_needs: Mapping[str, Sequence[str]],
) -> Selection:
    """Resolve ``requested`` (None: every layer) against one base release."""
    by_name = {layer.name: layer for layer in layers}
    unknown = [name for name in requested or () if name not in by_name]
    if unknown:
        raise LayerError(
            f"unknown fix {', '.join(map(repr, unknown))}; the fixes are: "
            + ", ".join(by_name)
        )
    complete = requested is None
    wanted = list(by_name) if requested is None else list(dict.fromkeys(requested))
    notes: list[str] = []
    chosen = [name for name in wanted if name not in not_needed]
    for name in wanted:
        if name in not_needed and not complete:
            notes.append(
                f"{name}: skipped, pytest {base} has this fix ({not_needed[name]})"
            )
    # Pull in what the chosen layers need, whether the base has their fix or not.
    pending = list(chosen)
    while pending:
        name = pending.pop()
        for need in (*by_name[name].needs, *extra_needs.get(name, ())):
            if need not in chosen:
                chosen.append(need)
                pending.append(need)
                why = (
                    f" (pytest {base} has its fix: {not_needed[need]}; merged as groundwork)"
                    if need in not_needed
                    else ""
                )
                notes.append(f"{need}: pulled in, {name} needs it{why}")
    if not chosen:
        raise LayerError(
            f"nothing to build: pytest {base} already has every selected fix ({', '.join(wanted)})"
        )
    ordered = [layer for layer in layers if layer.name in chosen]
    return Selection(
        layers=ordered,
        requested=wanted,
        notes=notes,
        complete=complete,
        available=list(by_name),
    )


def combine(layers: Sequence[Layer]) -> str:
    """The selected layers as one overlay (they define disjoint names)."""
    source = layers[0].source
    for layer in layers[1:]:
        try:
            source = overlay_merge.merge(source, layer.source, partial=True).code
        except overlay_merge.MergeError as e:
            raise LayerError(f"{layer.path.name}: {e}") from None
    return source


def describe(layers: Sequence[Layer]) -> str:
    """One line per layer: number, name, what it needs, its summary."""
    rows = []
    for layer in layers:
        needs = ", ".join(layer.needs) or "-"
        rows.append(
            f"{layer.number:02d} {layer.name:28} needs {needs:30} {layer.summary}"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(describe(load_layers()))
