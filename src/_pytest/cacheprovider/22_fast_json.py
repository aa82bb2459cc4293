"""Encoding a value costs more than writing it: indented ``json.dumps`` runs in pure Python.

Fix: fast-json
Bug: -
Affects: every release
Needs: atomic-set
Replaces: _dumps

Value files are indented JSON, and ``json.dumps`` uses its C encoder only
without ``indent``: every ``set`` runs the pure-Python one, about 5 us for a
small value, 240 us for 1,000 lastfailed entries and 27 ms for 100,000, more
than the write itself.  Here node ids, which need no escaping, are joined as
they are (a list of them, and a dict of them to ``true``: nodeids and
lastfailed); other containers of plain scalars go to the C encoder with the
line break and the indentation in its item separator, which then writes the
indented text; only the nesting above them is walked in Python.  The text is
exactly ``json.dumps``'s; any other value goes to ``json.dumps`` as before.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from json.encoder import encode_basestring


# Exact types that the C encoder writes, inside a container, as the indenting
# encoder does.  Subclasses (enums, ...) take the general path.
_PLAIN_SCALARS = frozenset({str, int, float, bool, type(None)})
# Exact types walked here as JSON objects and arrays.
_CONTAINERS = frozenset({dict, list, tuple})
# What json escapes in a string (ensure_ascii=False): quote, backslash, controls.
_ESCAPED = ('"', "\\", *map(chr, range(32)))
# Containers this small are walked item by item: cheaper than the C encoder's setup.
_FEW_ITEMS = 8
# Nesting walked here; deeper values (or a cycle) go to json.dumps, which
# also reports a cycle as it always did.
_MAX_NESTING = 32
# Per indentation, the C encoder whose item separator breaks and indents.
_FLAT_ENCODERS: dict[str, Callable[[object], str]] = {}


def _flat_encoder(inner: str) -> Callable[[object], str]:
    encode = _FLAT_ENCODERS.get(inner)
    if encode is None:
        separators = ("," + inner, ": ")
        encoder = json.JSONEncoder(ensure_ascii=False, separators=separators)
        encode = _FLAT_ENCODERS[inner] = encoder.encode
    return encode


def _verbatim_body(
    value: dict[object, object] | list[object] | tuple[object, ...],
    types: set[type],
    inner: str,
) -> str | None:
    """The items of a list of strings, or of a dict of strings to ``true``, each quoted as it is.

    That is how the encoder writes strings without a quote, backslash or
    control character (node ids, in practice); None for anything else.
    """
    strings: Iterable[object]
    if type(value) is dict:
        if types != {bool} or False in value.values() or set(map(type, value)) != {str}:
            return None
        strings, tail = value.keys(), '": true'
    elif types == {str}:
        strings, tail = value, '"'
    else:
        return None
    joined = "".join(strings)  # type: ignore[arg-type]
    if any(character in joined for character in _ESCAPED):
        return None
    return '"' + f'{tail},{inner}"'.join(strings) + tail  # type: ignore[arg-type]


def _indented_container(
    value: dict[object, object] | list[object] | tuple[object, ...],
    newline: str,
    depth: int,
) -> str | None:
    """A dict, list or tuple as :func:`_indented` writes it."""
    if not value:
        return "{}" if type(value) is dict else "[]"
    if depth >= _MAX_NESTING:
        return None
    inner = newline + "  "
    items = value.values() if isinstance(value, dict) else value
    if len(items) > _FEW_ITEMS:
        types = set(map(type, items))
        if types <= _PLAIN_SCALARS:
            body = _verbatim_body(value, types, inner)
            if body is None:
                body = _flat_encoder(inner)(value)[1:-1]
            opening, closing = ("{", "}") if type(value) is dict else ("[", "]")
            return opening + inner + body + newline + closing
    parts = []
    if isinstance(value, dict):
        for key, item in value.items():
            text = _indented(item, inner, depth + 1)
            if text is None or type(key) is not str:
                return None
            parts.append(f"{encode_basestring(key)}: {text}")
        return "{" + inner + ("," + inner).join(parts) + newline + "}"
    for item in value:
        text = _indented(item, inner, depth + 1)
        if text is None:
            return None
        parts.append(text)
    return "[" + inner + ("," + inner).join(parts) + newline + "]"


def _indented(value: object, newline: str, depth: int) -> str | None:
    """``value`` as ``json.dumps(indent=2)`` writes it, ``newline`` being its line start.

    None for anything but dicts, lists, tuples and plain scalars of those
    exact types, nested at most ``_MAX_NESTING`` deep, with ``str`` keys
    wherever a dict is walked here (a flat one goes to the C encoder, keys
    and all): the rest is left to ``json.dumps``.
    """
    if type(value) is str:
        return encode_basestring(value)
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if type(value) is float:  # As the encoder writes it, NaN and Infinity included.
        return _flat_encoder(newline)(value)
    if type(value) in _CONTAINERS and isinstance(value, (dict, list, tuple)):
        return _indented_container(value, newline, depth)
    return None


def _dumps(value: object) -> str:
    """The text of a value file: indented JSON that keeps non-ASCII characters.

    Byte for byte what ``json.dumps(value, ensure_ascii=False, indent=2)``
    returns, mostly written by the C encoder.
    """
    text = _indented(value, "\n", 0)
    if text is None:
        return json.dumps(value, ensure_ascii=False, indent=2)
    return text
