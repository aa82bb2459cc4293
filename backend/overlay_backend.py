"""In-tree PEP 517 backend: upstream pytest of a base release plus our cacheprovider overlay.

At build time the frontend installs ``pytest===<base>`` from the registry into
the build environment (see :func:`get_requires_for_build_wheel`).  The wheel is
upstream's own files, each checked against upstream's RECORD hash, except:

* ``_pytest/cacheprovider.py``: upstream's module with our overlay merged in;
* ``_pytest/_version.py`` and ``Version:`` in METADATA: ``<base>+<label>``;
* the dist-info name, ``WHEEL`` and ``RECORD``; and our license beside upstream's.

The base is chosen with the config setting ``base`` (``pip install -C base=9.2.0``);
an sdist freezes the base it was built for.  The config setting ``fixes``
(default ``all``) selects layers of the overlay (see ``layers``), e.g.
``-C fixes=publish-race``; the label then names the selection.  The label is
derived from the content of everything that shapes the merged module, so any
change to a layer or the merge changes the version, and two builds of one
commit are identical.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from collections.abc import Mapping
import csv
import hashlib
import importlib.metadata
import io
import json
import os
from pathlib import Path
import re
import sys
import tarfile
import zipfile

import layers
import overlay_merge


ROOT = Path(__file__).resolve().parent.parent
LAYERS_DIR = layers.LAYERS_DIR
BASES_FILE = ROOT / "backend" / "bases.json"
FROZEN_BASE_FILE = ROOT / "FROZEN_BASE"
LICENSE_FILE = ROOT / "LICENSE"
BACKEND_FILES = (
    "backend/overlay_backend.py",
    "backend/overlay_merge.py",
    "backend/layers.py",
    "backend/bases.json",
)


def label_inputs() -> list[Path]:
    """Files whose content decides the merged module: any change to them changes the label."""
    return [
        *sorted(LAYERS_DIR.glob("*.py")),
        *(ROOT / name for name in BACKEND_FILES),
    ]


def sdist_files() -> list[str]:
    return [
        "pyproject.toml",
        "README.md",
        "LICENSE",
        *BACKEND_FILES,
        *(p.relative_to(ROOT).as_posix() for p in sorted(LAYERS_DIR.glob("*.py"))),
    ]


MODULE = "_pytest/cacheprovider.py"
VERSION_MODULE = "_pytest/_version.py"
# Written by installers, not part of upstream's wheel.
INSTALLER_FILES = frozenset(
    {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json"}
)
# Fixed timestamp for reproducible archives (the zip format starts in 1980).
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
TAR_MTIME = 315532800

EDITABLE_MESSAGE = """\
An editable install of this project is not possible: it is upstream pytest's
installed package with one module (_pytest/cacheprovider.py) merged at build time,
and an installed regular package cannot have one module swapped in place.

Rebuild and reinstall instead, it takes seconds:
    pip install .            (or: uv pip install .)
or, to read or hack on the merged module, print it for any base and selection
    python backend/overlay_backend.py --base 9.2.0 [--fixes atomic-set] > cacheprovider.py
and copy it into a pytest git checkout of that release installed in editable mode.
"""


class BuildError(Exception):
    """The build cannot produce a correct wheel; the message says why and what to do."""


def _load_bases() -> dict[str, object]:
    with BASES_FILE.open(encoding="utf-8") as f:
        data: dict[str, object] = json.load(f)
    return data


def _base(config_settings: Mapping[str, object] | None) -> str:
    """The base release: frozen into an sdist, else ``-C base=X``, else the default."""
    bases = _load_bases()
    supported = bases["bases"]
    assert isinstance(supported, dict)
    requested = (config_settings or {}).get("base")
    if requested is not None and not isinstance(requested, str):
        raise BuildError(f"config setting 'base' must be given once, got {requested!r}")
    if FROZEN_BASE_FILE.exists():
        frozen = FROZEN_BASE_FILE.read_text(encoding="utf-8").strip()
        if requested not in (None, frozen):
            raise BuildError(
                f"this sdist was made for base {frozen}; build a new sdist from the "
                f"repository with -C base={requested} instead"
            )
        requested = frozen
    base = requested or str(bases["default"])
    if base not in supported:
        raise BuildError(
            f"pytest {base} is not a supported base; supported: {', '.join(supported)}. "
            "A new base needs its fingerprints reviewed and recorded in backend/bases.json."
        )
    admitted = [b for b, e in supported.items() if _admits(e["requires_python"])]
    if base not in admitted:
        here = ".".join(map(str, sys.version_info[:2]))
        raise BuildError(
            f"pytest {base} needs Python {supported[base]['requires_python']} or later, "
            f"this is Python {here}; the bases Python {here} admits: {', '.join(admitted)}"
        )
    return base


def _admits(requires_python: str) -> bool:
    """Whether this Python is at least ``requires_python`` (``3.10``: a base's Requires-Python)."""
    return sys.version_info[:2] >= tuple(map(int, requires_python.split(".")))


def _label() -> str:
    digest = hashlib.sha256()
    for path in label_inputs():
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes().replace(b"\r\n", b"\n"))
    return "fork." + digest.hexdigest()[:8]


def version_for(base: str, selection: layers.Selection | None = None) -> str:
    suffix = "" if selection is None else selection.label
    return f"{base}+{_label()}{suffix}"


def _selection(
    base: str, config_settings: Mapping[str, object] | None
) -> layers.Selection:
    """The layers ``-C fixes=...`` selects (default: all), resolved for ``base``."""
    recorded = _load_bases()["bases"]
    assert isinstance(recorded, dict)
    entry = recorded[base]
    try:
        selection = layers.select(
            layers.load_layers(LAYERS_DIR),
            layers.requested_fixes((config_settings or {}).get("fixes")),
            base=base,
            not_needed=entry.get("not_needed", {}),
            extra_needs=entry.get("needs", {}),
        )
    except layers.LayerError as e:
        raise BuildError(str(e)) from None
    for note in selection.notes:
        print(f"fixes: {note}", file=sys.stderr)
    return selection


def get_requires_for_build_wheel(
    config_settings: Mapping[str, object] | None = None,
) -> list[str]:
    # '===' so that a local '<base>+label' wheel (ours) can never satisfy it.
    return [f"pytest==={_base(config_settings)}"]


def get_requires_for_build_sdist(
    config_settings: Mapping[str, object] | None = None,
) -> list[str]:
    return []


def get_requires_for_build_editable(
    config_settings: Mapping[str, object] | None = None,
) -> list[str]:
    return []


def build_editable(
    wheel_directory: str,
    config_settings: Mapping[str, object] | None = None,
    metadata_directory: str | None = None,
) -> str:
    raise BuildError(EDITABLE_MESSAGE)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _upstream_files(base: str) -> dict[str, bytes]:
    """Upstream's wheel content, read from its installation and checked against its RECORD."""
    try:
        dist = importlib.metadata.distribution("pytest")
    except importlib.metadata.PackageNotFoundError:
        raise BuildError(
            f"upstream pytest=={base} is not installed in the build environment"
        ) from None
    if dist.version != base:
        raise BuildError(
            f"the build environment has pytest {dist.version}, the base is {base}: "
            "build with isolation (the default of pip, uv and build), which installs "
            f"pytest==={base} as a build requirement"
        )
    files: dict[str, bytes] = {}
    for entry in dist.files or ():
        name = entry.as_posix()
        parts = name.split("/")
        if name.startswith("..") or "__pycache__" in parts:
            continue  # Console scripts and bytecode are made by the installer.
        if parts[0].endswith(".dist-info") and parts[-1] in INSTALLER_FILES:
            continue
        if entry.hash is None or entry.hash.mode != "sha256":
            raise BuildError(f"upstream's RECORD has no sha256 for {name}")
        data = Path(str(dist.locate_file(entry))).read_bytes()
        if _record_hash(data) != f"sha256={entry.hash.value}":
            raise BuildError(
                f"{name} does not match upstream's RECORD: the base installation was modified"
            )
        files[name] = data
    if MODULE not in files:
        raise BuildError(f"upstream pytest {base} has no {MODULE}")
    return files


def _check_fingerprints(
    base: str,
    result: overlay_merge.MergeResult,
    selection: layers.Selection | None = None,
) -> None:
    """The merge must do exactly what was reviewed for this base.

    Every upstream definition it replaces must have the fingerprint recorded
    for ``base``; with every layer selected, every recorded one must be
    replaced; a layer replaces nothing of upstream's that its ``Replaces``
    does not name (a name upstream lacks on this base is added); and what a
    base keeps must still match the overlay definition it stands for.
    """
    entry = _load_bases()["bases"]
    assert isinstance(entry, dict)
    recorded = entry[base]
    complete = selection is None or selection.complete
    problems: list[str] = []
    for name, fp in sorted(result.replaced.items()):
        expected = recorded["replaces"].get(name)
        if fp in recorded.get("also_reviewed", {}).get(name, {}):
            continue  # A reviewed variant from a git ref of upstream (export only).
        if expected is None:
            problems.append(
                f"overlay replaces {name}, which is not recorded as replaced for {base}"
            )
        elif expected != fp:
            problems.append(
                f"upstream's {name} in {base} differs from the one the overlay was written against "
                f"(fingerprint {fp}, recorded {expected}): review it, adapt the overlay, record the new fingerprint"
            )
    if complete:
        for name in sorted(set(recorded["replaces"]) - set(result.replaced)):
            problems.append(
                f"{name} is recorded as replaced for {base} but the overlay no longer replaces it"
            )
    keep = recorded["keep"]
    for layer in selection.layers if selection is not None else ():
        declared = set(layer.replaces)
        actual = {n for n in layer.defines if n in result.replaced}
        for name in sorted(declared - set(layer.defines)):
            problems.append(
                f"layer {layer.path.name} names {name} in Replaces but does not define it"
            )
        for name in sorted(actual - declared):
            problems.append(
                f"layer {layer.path.name} replaces upstream's {name} without naming it in Replaces"
            )
        if isinstance(keep, dict):
            overlay = overlay_merge.definition_fingerprints(layer.source)
            for name, reviewed in sorted(keep.items()):
                if name in overlay and overlay[name] != reviewed:
                    problems.append(
                        f"the overlay's {name} changed since {base} was reviewed to keep upstream's own "
                        f"(fingerprint {overlay[name]}, reviewed {reviewed}): check that upstream's "
                        f"still does what the overlay's does now, then record the new fingerprint"
                    )
    if problems:
        raise BuildError(
            "the overlay does not fit upstream pytest "
            + base
            + ":\n  "
            + "\n  ".join(problems)
        )


def _overlay_for(base: str, selection: layers.Selection) -> str:
    """The selected layers as one overlay, less what this base already has right ('keep')."""
    entry = _load_bases()["bases"]
    assert isinstance(entry, dict)
    try:
        combined = layers.combine(selection.layers)
    except layers.LayerError as e:
        raise BuildError(f"cannot combine the layers: {e}") from None
    defined = overlay_merge.definition_fingerprints(combined)
    keep = [name for name in entry[base]["keep"] if name in defined]
    return overlay_merge.without_definitions(combined, keep)


def merged_module(
    base: str, upstream_source: str, selection: layers.Selection | None = None
) -> overlay_merge.MergeResult:
    """Merge the selected layers (default: all) into ``upstream_source`` of ``base``, checked."""
    if selection is None:
        selection = _selection(base, None)
    overlay = _overlay_for(base, selection)
    try:
        result = overlay_merge.merge(upstream_source, overlay)
    except overlay_merge.MergeError as e:
        raise BuildError(f"cannot merge the overlay into pytest {base}: {e}") from None
    _check_fingerprints(base, result, selection)
    return result


def _rewrite_version_module(source: str, base: str, version: str) -> str:
    local = version.split("+", 1)[1].split(".")
    parts = [*base.split("."), *local]
    as_tuple = "(" + ", ".join(p if p.isdigit() else repr(p) for p in parts) + ")"
    new, n1 = re.subn(
        r"^(__version__ = version = ).*$",
        rf"\g<1>{version!r}",
        source,
        flags=re.MULTILINE,
    )
    new, n2 = re.subn(
        r"^(__version_tuple__ = version_tuple = ).*$",
        rf"\g<1>{as_tuple}",
        new,
        flags=re.MULTILINE,
    )
    if n1 != 1 or n2 != 1:
        raise BuildError(f"unexpected layout of upstream's {VERSION_MODULE}")
    return new


def _rewrite_metadata(source: bytes, base: str, version: str) -> bytes:
    pattern = rb"^Version: " + re.escape(base.encode()) + rb"$"
    new, n = re.subn(
        pattern, b"Version: " + version.encode(), source, count=1, flags=re.MULTILINE
    )
    if n != 1:
        raise BuildError(f"upstream's METADATA has no 'Version: {base}' line")
    return new


def _wheel_files(
    base: str, selection: layers.Selection
) -> tuple[str, list[tuple[str, bytes]]]:
    version = version_for(base, selection)
    upstream = _upstream_files(base)
    old_info = f"pytest-{base}.dist-info"
    new_info = f"pytest-{version}.dist-info"
    out: dict[str, bytes] = {}
    for name, data in upstream.items():
        if name == MODULE:
            data = merged_module(base, data.decode("utf-8"), selection).code.encode(
                "utf-8"
            )
        elif name == VERSION_MODULE:
            data = _rewrite_version_module(data.decode("utf-8"), base, version).encode(
                "utf-8"
            )
        elif name == f"{old_info}/METADATA":
            data = _rewrite_metadata(data, base, version)
        elif name == f"{old_info}/WHEEL":
            continue
        if name.startswith(old_info + "/"):
            name = new_info + name[len(old_info) :]
        out[name] = data
    licenses = (
        f"{new_info}/licenses"
        if any(n.startswith(f"{new_info}/licenses/") for n in out)
        else new_info
    )
    out[f"{licenses}/LICENSE.cache-overlay"] = LICENSE_FILE.read_bytes()
    out[f"{new_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: pytest-cache-overlay backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record_name = f"{new_info}/RECORD"
    # dist-info last, as installers expect; RECORD lists itself without a hash.
    ordered = sorted(
        out.items(), key=lambda item: (item[0].startswith(new_info), item[0])
    )
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in ordered:
        writer.writerow([name, _record_hash(data), str(len(data))])
    writer.writerow([record_name, "", ""])
    ordered.append((record_name, record.getvalue().encode()))
    return version, ordered


def _write_zip(path: Path, entries: Iterable[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=9)


def build_wheel(
    wheel_directory: str,
    config_settings: Mapping[str, object] | None = None,
    metadata_directory: str | None = None,
) -> str:
    base = _base(config_settings)
    version, entries = _wheel_files(base, _selection(base, config_settings))
    filename = f"pytest-{version}-py3-none-any.whl"
    _write_zip(Path(wheel_directory) / filename, entries)
    return filename


def build_sdist(
    sdist_directory: str, config_settings: Mapping[str, object] | None = None
) -> str:
    base = _base(config_settings)
    if (config_settings or {}).get("fixes") is not None:
        raise BuildError(
            "an sdist carries every layer: select fixes when building the wheel "
            "(pip install -C fixes=... .)"
        )
    version = version_for(base)
    prefix = f"pytest-{version}"
    pkg_info = (
        "Metadata-Version: 2.1\nName: pytest\n"
        f"Version: {version}\n"
        "Summary: pytest with a race-free cache plugin (upstream pytest plus the cacheprovider overlay)\n"
        "License: MIT\n"
    ).encode()
    members = [(name, (ROOT / name).read_bytes()) for name in sdist_files()]
    members += [("FROZEN_BASE", f"{base}\n".encode()), ("PKG-INFO", pkg_info)]
    filename = f"{prefix}.tar.gz"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(members):
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(data)
            info.mtime = TAR_MTIME
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    import gzip

    with gzip.GzipFile(Path(sdist_directory) / filename, "wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return filename


def _upstream_module(base: str) -> str:
    """Upstream's ``_pytest/cacheprovider.py`` of ``base``, from its wheel on the package index.

    The wheel is downloaded once into ``$XDG_CACHE_HOME/pytest-fork-bases``
    (``~/.cache``) with pip, and never imported.
    """
    import subprocess

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = cache / "pytest-fork-bases" / base
    wheels = sorted(folder.glob(f"pytest-{base}-*.whl"))
    if not wheels:
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--only-binary", ":all:", "--dest", str(folder), f"pytest==={base}"),
            ],
            check=True,
        )
        wheels = sorted(folder.glob(f"pytest-{base}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        return wheel.read(MODULE).decode("utf-8")


def _cli(argv: list[str]) -> int:
    """Print the merged module, or what the merge replaced and added (``--report``)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python backend/overlay_backend.py",
        description="Print _pytest/cacheprovider.py as the build merges it: upstream's "
        "module of the base release (from the package index) with the selected layers.",
    )
    parser.add_argument(
        "--base", default=None, help="base release (default: the default base)"
    )
    parser.add_argument(
        "--fixes", default="all", help="layers, comma-separated (as -C fixes=...)"
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="print what was replaced and added instead",
    )
    args = parser.parse_args(argv)
    base = _base({"base": args.base} if args.base else None)
    try:
        result = merged_module(
            base, _upstream_module(base), _selection(base, {"fixes": args.fixes})
        )
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.report:
        print(json.dumps({"replaces": result.replaced, "adds": result.added}, indent=2))
    else:
        sys.stdout.write(result.code)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(_cli(sys.argv[1:]))
