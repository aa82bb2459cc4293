"""One figure of fork against stock: medians of alternated rounds, their ratio and spread."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import math
import statistics

from forktools.bench.config import FORK
from forktools.bench.config import STOCK
from forktools.bench.targets import target_met


@dataclasses.dataclass
class Result:
    """One figure: the medians of both envs, their samples and anything else worth keeping."""

    name: str
    unit: str
    fork: float
    stock: float
    variant: str = ""
    extra: dict[str, object] = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return compute_ratio(self.fork, self.stock)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.name,
            "variant": self.variant,
            "fork": round(self.fork, 6),
            "stock": round(self.stock, 6),
            "unit": self.unit,
            "ratio": None if self.ratio is None else round(self.ratio, 4),
        }
        data.update(self.extra)
        data["target_met"] = target_met(data)
        return data


def compute_ratio(fork: float, stock: float) -> float | None:
    """The ratio fork/stock, or None when it has no meaning (stock zero, a value not finite)."""
    if stock == 0 or not math.isfinite(fork) or not math.isfinite(stock):
        return None
    return fork / stock


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (NaN for none, so that an empty figure shows up as such)."""
    data = list(values)
    return statistics.median(data) if data else math.nan


def paired_ratio_spread(
    fork: Sequence[float], stock: Sequence[float]
) -> tuple[float, float] | None:
    """Lowest and highest ratio of the fork/stock pairs of the same round (None without pairs)."""
    ratios = [
        r
        for f, s in zip(fork, stock, strict=False)
        if (r := compute_ratio(f, s)) is not None
    ]
    return (min(ratios), max(ratios)) if ratios else None


def result_from_samples(
    name: str,
    unit: str,
    samples: Mapping[str, Sequence[float]],
    *,
    variant: str = "",
    **extra: object,
) -> Result:
    """A :class:`Result` with the medians of ``samples`` (per env) and the samples kept."""
    fork, stock = list(samples[FORK]), list(samples[STOCK])
    info: dict[str, object] = {"rounds": min(len(fork), len(stock))}
    spread = paired_ratio_spread(fork, stock)
    if spread is not None:
        info["ratio_range"] = [round(spread[0], 4), round(spread[1], 4)]
    info["fork_samples"] = [round(v, 6) for v in fork]
    info["stock_samples"] = [round(v, 6) for v in stock]
    info.update(extra)
    return Result(name, unit, median(fork), median(stock), variant, info)


def cpu_figures(cpu: Mapping[str, Sequence[float]], rounds: int) -> dict[str, object]:
    """Extra fields for a wall-time result: the medians of the measured rounds' CPU seconds."""
    fork, stock = median(cpu[FORK][-rounds:]), median(cpu[STOCK][-rounds:])
    ratio = compute_ratio(fork, stock)
    return {
        "fork_cpu": round(fork, 4),
        "stock_cpu": round(stock, 4),
        "cpu_ratio": None if ratio is None else round(ratio, 4),
    }


def to_document(results: Sequence[Result], **meta: object) -> dict[str, object]:
    """The JSON document: ``{"results": [...]}`` plus what the run was made of."""
    document: dict[str, object] = {"results": [r.to_json() for r in results]}
    document.update(meta)
    return document
