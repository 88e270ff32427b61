"""Tables for the terminal and for docs/benchmarks.md, and the JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .results import TOOL_LABELS, Results, Target, fanout_dict, measurement_dict


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _met(target: Target) -> str:
    if target.met is None:
        return "not measured"
    return "met" if target.met else "missed"


def _target_value(target: Target) -> str:
    if target.value is None:
        return "-"
    if target.unit == "ms":
        return f"{target.value:.1f} ms"
    return f"{target.value:.2f}x"


def _threshold(target: Target) -> str:
    comparison = {"<=": "≤", "<": "<", ">=": "≥"}[target.comparison]
    if target.unit == "ms":
        return f"{comparison} {target.threshold:g} ms"
    return f"{comparison} {target.threshold:g}x"


def measurement_rows(results: Results) -> list[list[str]]:
    rows = []
    for measurement in results.measurements:
        if not measurement.samples:
            continue
        rows.append(
            [
                measurement.workload,
                str(measurement.files),
                TOOL_LABELS[measurement.tool],
                measurement.mode,
                str(len(measurement.samples)),
                _seconds(measurement.median),
                _seconds(min(measurement.samples)),
                _seconds(max(measurement.samples)),
                _ratio(results.ratio_to_floor(measurement)),
            ]
        )
    return rows


MEASUREMENT_HEADERS = [
    "workload",
    "files",
    "tool",
    "mode",
    "runs",
    "median s",
    "min s",
    "max s",
    "x floor",
]


def fanout_rows(results: Results) -> list[list[str]]:
    slowest = results.fanout_median(min((m.forks for m in results.fanout), default=0))
    rows = []
    for measurement in results.fanout:
        speedup = slowest / measurement.median if slowest and measurement.samples else None
        rows.append(
            [
                str(measurement.forks),
                str(measurement.databases),
                str(len(measurement.samples)),
                _seconds(measurement.median),
                _seconds(min(measurement.samples)),
                _seconds(max(measurement.samples)),
                _ratio(speedup),
            ]
        )
    return rows


FANOUT_HEADERS = ["forks", "databases", "runs", "median s", "min s", "max s", "speed-up"]


def target_rows(targets: list[Target]) -> list[list[str]]:
    rows = []
    for target in targets:
        of_medians = "-" if target.ratio_of_medians is None else f"{target.ratio_of_medians:.2f}x"
        if target.unit == "ms":
            of_medians = "-"
        threshold = _threshold(target)
        rows.append(
            [target.name, target.scope, threshold, _target_value(target), of_medians, _met(target)]
        )
    return rows


TARGET_HEADERS = ["target", "scope", "threshold", "measured", "of medians", "result"]


def format_table(headers: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    """Lay out rows in aligned columns, or as a Markdown table. Numeric columns align right."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(cells, widths, numeric, strict=True)
        ]
        if markdown:
            return "| " + " | ".join(padded) + " |"
        return "  ".join(padded).rstrip()

    lines = [line(headers)]
    if markdown:
        rules = [
            ("-" * (width - 1) + ":") if right else "-" * width
            for width, right in zip(widths, numeric, strict=True)
        ]
        lines.append("| " + " | ".join(rules) + " |")
    else:
        lines.append("  ".join("-" * width for width in widths))
    lines += [line(row) for row in rows]
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    if text == "-":
        return True
    try:
        float(text.rstrip("x"))
    except ValueError:
        return False
    return True


def render(results: Results, targets: list[Target], markdown: bool = False) -> str:
    """Return the measurement, fan-out and target tables, separated by blank lines."""
    parts = [format_table(MEASUREMENT_HEADERS, measurement_rows(results), markdown)]
    if results.fanout:
        parts.append(format_table(FANOUT_HEADERS, fanout_rows(results), markdown))
    parts.append(format_table(TARGET_HEADERS, target_rows(targets), markdown))
    return "\n\n".join(parts) + "\n"


def write_json(
    path: Path,
    results: Results,
    targets: list[Target],
    environment: dict[str, Any],
    settings: dict[str, Any],
) -> None:
    """Write every sample, median, ratio and target, with the machine and settings used."""
    document = {
        "environment": environment,
        "settings": settings,
        "measurements": [measurement_dict(results, m) for m in results.measurements],
        "fanout": [fanout_dict(m) for m in results.fanout],
        "targets": [target.as_dict() for target in targets],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
