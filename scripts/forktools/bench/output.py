"""What the benchmark prints and draws: the markdown table, the chart, the machine."""

from __future__ import annotations

from collections.abc import Mapping
import io
import os
from pathlib import Path
import platform

from forktools import report
from forktools.bench.config import BenchError
from forktools.bench.config import ORDER
from forktools.bench.config import STOCK
from forktools.bench.targets import format_number
from forktools.bench.targets import target_met
from forktools.bench.targets import target_text


def machine_info() -> dict[str, object]:
    """Where the figures come from: CPU, cores, OS, Python, and the load now."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def format_table(document: Mapping[str, object]) -> str:
    """A markdown table of the results (one row per name and variant)."""
    rows = []
    entries = document.get("results")
    for entry in entries if isinstance(entries, list) else []:
        name = str(entry.get("name"))
        fork, stock = (
            format_number(entry.get("fork")),
            format_number(entry.get("stock")),
        )
        if name == "creation-race":
            fork += f" ({entry.get('fork_failures')}/{entry.get('creators')} failed)"
            stock += f" ({entry.get('stock_failures')}/{entry.get('creators')} failed)"
        wanted = target_text(entry)
        verdict = {True: "met", False: "MISSED", None: ""}[target_met(entry)]
        rows.append(
            [
                name,
                str(entry.get("variant") or ""),
                fork,
                stock,
                str(entry.get("unit")),
                format_number(entry.get("ratio")),
                f"{wanted}: {verdict}" if wanted and verdict else "",
                format_number(entry.get("cpu_ratio")) if "cpu_ratio" in entry else "",
            ]
        )
    headers = ("benchmark", "variant", "fork", "stock", "unit", "fork/stock")
    return report.table([*headers, "target", "CPU fork/stock"], rows, style="markdown")


CHART_TITLE = "Creation race: time from launch to first test"
CHART_X_LABEL = "concurrent creators of a fresh cache (processes, log scale)"


def render_chart(document: Mapping[str, object]) -> str:
    """An SVG line chart of the creation race: time to first test against creators, fork and stock."""
    import matplotlib  # Only the chart needs it (the bench env installs it).

    matplotlib.use("Agg")
    from matplotlib import pyplot

    entries = document.get("results")
    race = sorted(
        (
            e
            for e in (entries if isinstance(entries, list) else [])
            if e.get("name") == "creation-race"
        ),
        key=lambda e: int(e["workers"]),
    )
    if not race:
        raise BenchError("no creation-race results to chart")
    machine = document.get("machine")
    machine = machine if isinstance(machine, dict) else {}
    versions = document.get("envs")
    versions = versions if isinstance(versions, dict) else {}
    load = machine.get("load")
    subtitle = (
        f"{race[0].get('trials', '?')} trial(s) per point, median of all creators; "
        f"{machine.get('cores', '?')} cores ({machine.get('cpu', '?')})"
        + (f", load {load[0]}" if isinstance(load, list) and load else "")
    )
    figure, axes = pyplot.subplots(figsize=(7.2, 4.4))
    workers = [int(e["workers"]) for e in race]
    for env, color, style in ((ORDER[0], "#1f77b4", "-"), (STOCK, "#d62728", "--")):
        times = [float(e[env]) for e in race]
        failed = sum(int(str(e.get(f"{env}_failures") or 0)) for e in race)
        creators = sum(int(str(e.get("creators") or 0)) for e in race)
        axes.plot(
            workers,
            times,
            style,
            marker="o",
            color=color,
            label=f"{env} {versions.get(env, '')}: {failed}/{creators} creators failed",
        )
        for e, n, t in zip(race, workers, times, strict=True):
            if e.get(f"{env}_failures"):
                axes.annotate(
                    f"{e.get(f'{env}_failures')}/{e.get('creators')} failed",
                    (n, t),
                    textcoords="offset points",
                    xytext=(6, -14 if env == STOCK else 8),
                    color=color,
                )
    axes.set_xscale("log", base=2)
    axes.set_xticks(workers, [str(n) for n in workers])
    axes.set_ylim(bottom=0)
    axes.set_xlabel(CHART_X_LABEL)
    axes.set_ylabel("seconds")
    axes.grid(axis="y", color="#ddd")
    axes.legend(loc="upper left", frameon=False)
    figure.suptitle(CHART_TITLE, x=0.02, ha="left", fontweight="bold")
    axes.set_title(subtitle, loc="left", fontsize="small", color="#555")
    out = io.StringIO()
    # No date in the metadata: the same figures draw the same file.
    figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    pyplot.close(figure)
    return out.getvalue()
