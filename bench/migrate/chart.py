"""Draw the medians as a PNG: first apply, no-op and check mode, and the fan-out."""

from __future__ import annotations

from pathlib import Path

from .results import (
    APPLY,
    CHECK,
    COMMUNITY,
    ENGINE,
    FLOOR,
    NOOP,
    PING,
    PLAYBOOK,
    RUN,
    TOOL_LABELS,
    Results,
)

APPLY_SERIES = [(FLOOR, APPLY), (ENGINE, APPLY), (PLAYBOOK, APPLY), (COMMUNITY, APPLY)]
RERUN_SERIES = [
    (ENGINE, NOOP),
    (PLAYBOOK, NOOP),
    (PING, RUN),
    (ENGINE, CHECK),
    (PLAYBOOK, CHECK),
]


def matplotlib_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _series_label(tool: str, mode: str) -> str:
    if mode in (APPLY, RUN):
        return TOOL_LABELS[tool]
    return f"{TOOL_LABELS[tool]}, {mode}"


def _grouped_bars(axes, results: Results, workloads: list[str], series, title: str) -> None:
    present = [s for s in series if any(results.median(w, *s) is not None for w in workloads)]
    width = 0.8 / max(1, len(present))
    lowest = min(
        (m for s in present for w in workloads if (m := results.median(w, *s)) is not None),
        default=1.0,
    )
    for index, (tool, mode) in enumerate(present):
        positions = [w + (index - (len(present) - 1) / 2) * width for w in range(len(workloads))]
        heights = [results.median(workload, tool, mode) or 0.0 for workload in workloads]
        bars = axes.bar(positions, heights, width, label=_series_label(tool, mode))
        axes.bar_label(
            bars, labels=[_short(h) for h in heights], fontsize=6, rotation=90, padding=2
        )
    axes.set_xticks(range(len(workloads)), workloads)
    axes.set_yscale("log")
    # Bars on a log scale start at the bottom edge, so it goes below the lowest median, and
    # the top leaves room for the labels.
    axes.set_ylim(bottom=lowest / 3, top=axes.get_ylim()[1] * 4)
    axes.set_ylabel("median wall-clock seconds (log scale)")
    axes.set_title(title)
    axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=2)


def _short(seconds: float) -> str:
    if seconds <= 0:
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _fanout_bars(axes, results: Results) -> None:
    forks = [measurement.forks for measurement in results.fanout]
    medians = [results.fanout_median(fork) or 0.0 for fork in forks]
    bars = axes.bar([str(fork) for fork in forks], medians, color="tab:purple")
    axes.bar_label(bars, labels=[_short(m) for m in medians], fontsize=8)
    databases = results.fanout[0].databases
    axes.set_xlabel("forks")
    axes.set_ylabel("median wall-clock seconds")
    axes.set_title(f"Shipped SQL to {databases} databases")


def draw(path: Path, results: Results, workloads: list[str], title: str) -> None:
    """Write the chart to ``path``. Needs matplotlib (requirements-bench.txt)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if results.fanout else 2
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 6.5), constrained_layout=True)
    _grouped_bars(axes[0], results, workloads, APPLY_SERIES, "First apply, fresh database")
    _grouped_bars(axes[1], results, workloads, RERUN_SERIES, "No-op rerun and check mode")
    if results.fanout:
        _fanout_bars(axes[2], results)
    figure.suptitle(title)
    figure.savefig(path, dpi=100)
    plt.close(figure)
