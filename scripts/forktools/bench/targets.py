"""The targets (issues 12 and 17): which figure each one judges, and the PASS/MISS lines."""

from __future__ import annotations

from collections.abc import Mapping
import math


#: Targets of issues 12 and 17, on the ratio fork/stock of one field of a result:
#: name -> (field, comparison, bound, noise band, variants it applies to or None for all).
#: Issue 17 raised set-cost's bound from 0.80 to 1.00 (one honest write path) and
#: added session-start (100,000 lastfailed entries).
TARGETS: dict[str, tuple[str, str, float, float, frozenset[str] | None]] = {
    "suite-run": ("cpu_ratio", "<=", 1.00, 0.02, None),
    "set-cost": (
        "ratio",
        "<=",
        1.00,
        0.0,
        frozenset(
            {
                "overwrite, tmpfs",
                "new-key, tmpfs",
                "overwrite, disk (user CPU)",
                "new-key, disk (user CPU)",
            }
        ),
    ),
    "set-syscalls": ("ratio", "<=", 1.00, 0.0, None),
    # The user-space part of set-cost's target, counted: no noise, so no band.
    "set-instructions": ("ratio", "<=", 1.00, 0.0, None),
    "lastfailed-session-end": ("ratio", "<=", 1.00, 0.02, None),
    # The same, counted: no noise, so no band.
    "session-end-instructions": ("ratio", "<=", 1.00, 0.0, None),
    "lastfailed-memory": ("ratio", "<=", 1.05, 0.0, None),
    "session-start": ("ratio", "<=", 1.00, 0.02, None),
    # The same target, counted: no noise, so no band.
    "session-start-instructions": ("ratio", "<=", 1.00, 0.0, None),
}
#: Absolute targets: the fork's figure must be at most this (steady-state writes: none).
FORK_AT_MOST: dict[str, float] = {"steady-state-writes": 0.0}
#: The creation-race target: no failed creator on the fork at this many workers.
RACE_TARGET_WORKERS = 64


def target_met(entry: Mapping[str, object]) -> bool | None:
    """Whether a result entry (as in the JSON) meets its target; None if it has none.

    Ratio targets allow their noise band (``suite-run``: CPU 1.00 within 2%). The
    creation race is judged at 64 workers only: no failed creator on the fork.
    """
    name = entry.get("name")
    if name == "creation-race":
        if entry.get("workers") != RACE_TARGET_WORKERS:
            return None
        return entry.get("fork_failures") == 0
    if isinstance(name, str) and name in FORK_AT_MOST:
        fork = entry.get("fork")
        if not isinstance(fork, (int, float)) or not math.isfinite(fork):
            return None
        return fork <= FORK_AT_MOST[name]
    if not isinstance(name, str) or name not in TARGETS:
        return None
    field, op, bound, band, variants = TARGETS[name]
    if variants is not None and entry.get("variant") not in variants:
        return None
    ratio = entry.get(field)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        return None
    return ratio <= bound + band if op == "<=" else ratio >= bound - band


def target_text(entry: Mapping[str, object]) -> str:
    """What the target of ``entry`` asks, in words ('' when it has none)."""
    name = str(entry.get("name"))
    if target_met(entry) is None:
        return ""
    if name == "creation-race":
        return f"0 fork failures at {RACE_TARGET_WORKERS}"
    if name in FORK_AT_MOST:
        return f"fork <= {FORK_AT_MOST[name]:g}"
    field, op, bound, band, _ = TARGETS[name]
    what = "CPU fork/stock" if field == "cpu_ratio" else "fork/stock"
    return f"{what} {op} {bound:.2f}" + (f" (±{band:.0%})" if band else "")


def target_lines(document: Mapping[str, object]) -> list[str]:
    """One PASS/MISS line per result that has a target, with its measured figure."""
    lines = []
    entries = document.get("results")
    for entry in entries if isinstance(entries, list) else []:
        met = target_met(entry)
        if met is None:
            continue
        name = str(entry.get("name"))
        label = f"{name} {entry.get('variant') or ''}".strip()
        if name == "creation-race":
            figure = f"fork {entry.get('fork_failures')}/{entry.get('creators')} failed"
        elif name in FORK_AT_MOST:
            figure = f"fork {format_number(entry.get('fork'))}, stock {format_number(entry.get('stock'))}"
        else:
            field = TARGETS[name][0]
            figure = f"{format_number(entry.get(field))}"
            if field == "cpu_ratio":
                figure = f"CPU {figure} (wall {format_number(entry.get('ratio'))}"
                spread = entry.get("ratio_range")
                if isinstance(spread, list) and len(spread) == 2:
                    # The rounds' own wall ratios: how far one pair moves by itself.
                    low, high = (format_number(v) for v in spread)
                    figure += f"; rounds {low}-{high}"
                figure += ")"
        lines.append(
            f"{'PASS' if met else 'MISS'}  {label}: {figure}; target {target_text(entry)}"
        )
    return lines


def format_number(value: object) -> str:
    """A figure for the table: 4 significant digits, or a dash."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
    ):
        return "-"
    return f"{value:.4g}"
