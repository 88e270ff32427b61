"""Samples, medians, ratios to the floor, and the targets read from them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

FLOOR = "psql"
ENGINE = "engine"
PLAYBOOK = "postgresql_migrate"
COMMUNITY = "postgresql_script"
PING = "ping"

APPLY = "apply"
NOOP = "no-op"
CHECK = "check"
RUN = "run"

TOOL_LABELS = {
    FLOOR: "psql, one connection (floor)",
    ENGINE: "engine in-process",
    PLAYBOOK: "ansible-playbook, postgresql_migrate",
    COMMUNITY: "ansible-playbook, looped postgresql_script",
    PING: "ansible-playbook, ansible.builtin.ping",
}


@dataclass
class Measurement:
    """The wall-clock samples, in seconds, of one tool in one mode on one workload."""

    workload: str
    files: int
    tool: str
    mode: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


@dataclass
class FanoutMeasurement:
    """The samples, in seconds, of deploying to ``databases`` databases with ``forks`` forks."""

    forks: int
    databases: int
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


@dataclass
class Results:
    """Every measurement of one benchmark run."""

    measurements: list[Measurement] = field(default_factory=list)
    fanout: list[FanoutMeasurement] = field(default_factory=list)

    def get(self, workload: str, tool: str, mode: str) -> Measurement | None:
        for measurement in self.measurements:
            if (measurement.workload, measurement.tool, measurement.mode) == (workload, tool, mode):
                return measurement
        return None

    def samples(self, workload: str, tool: str, mode: str) -> list[float]:
        """Return the samples of one measurement in round order, or [] if it was not made."""
        measurement = self.get(workload, tool, mode)
        return measurement.samples if measurement is not None else []

    def median(self, workload: str, tool: str, mode: str) -> float | None:
        measurement = self.get(workload, tool, mode)
        if measurement is None or not measurement.samples:
            return None
        return measurement.median

    def ratio_to_floor(self, measurement: Measurement) -> float | None:
        """Return the median divided by the median of psql applying the same workload."""
        floor = self.median(measurement.workload, FLOOR, APPLY)
        if floor is None or not measurement.samples:
            return None
        return measurement.median / floor

    def fanout_samples(self, forks: int) -> list[float]:
        for measurement in self.fanout:
            if measurement.forks == forks:
                return measurement.samples
        return []

    def fanout_median(self, forks: int) -> float | None:
        for measurement in self.fanout:
            if measurement.forks == forks and measurement.samples:
                return measurement.median
        return None


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A goal read from the figures, such as engine apply at most 1.15 times the floor.

    ``value`` is the median of the per-round ratios (see ``paired_ratio``), and
    ``ratio_of_medians`` the ratio of the two medians, for comparison. For a goal in
    milliseconds both are the median.
    """

    name: str
    scope: str
    comparison: str
    threshold: float
    unit: str
    value: float | None
    ratio_of_medians: float | None = None

    @property
    def met(self) -> bool | None:
        """Whether the value meets the threshold, or None when it was not measured."""
        if self.value is None:
            return None
        if self.comparison == "<=":
            return self.value <= self.threshold
        if self.comparison == "<":
            return self.value < self.threshold
        return self.value >= self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "unit": self.unit,
            "value": self.value,
            "ratio_of_medians": self.ratio_of_medians,
            "met": self.met,
        }


def paired_ratio(numerator: list[float], denominator: list[float]) -> float | None:
    """Return the median of ``numerator[i] / denominator[i]`` over the rounds both have.

    Each list contains one sample per round in round order, so each ratio compares two runs made
    seconds apart under the same load from other processes. Load changes over minutes on a
    shared machine, and a ratio of medians taken over different minutes would carry it.
    """
    count = min(len(numerator), len(denominator))
    if count == 0:
        return None
    return statistics.median(numerator[i] / denominator[i] for i in range(count))


def _ratio_of_medians(numerator: list[float], denominator: list[float]) -> float | None:
    if not numerator or not denominator:
        return None
    return statistics.median(numerator) / statistics.median(denominator)


def _ratio_target(
    name: str,
    scope: str,
    comparison: str,
    threshold: float,
    numerator: list[float],
    denominator: list[float],
) -> Target:
    return Target(
        name,
        scope,
        comparison,
        threshold,
        "x",
        paired_ratio(numerator, denominator),
        _ratio_of_medians(numerator, denominator),
    )


def evaluate_targets(results: Results, workloads: list[str], forks: list[int]) -> list[Target]:
    """Compute every target. A target whose runs were not measured has no value."""
    samples = results.samples
    targets: list[Target] = []
    for scope in ("N=100", "N=1000"):
        engine, floor = samples(scope, ENGINE, APPLY), samples(scope, FLOOR, APPLY)
        targets.append(
            _ratio_target("engine first apply / psql floor", scope, "<=", 1.15, engine, floor)
        )

    noop = results.median("N=1000", ENGINE, NOOP)
    noop_ms = noop * 1000 if noop is not None else None
    targets.append(Target("engine no-op rerun", "N=1000", "<", 60.0, "ms", noop_ms, noop_ms))

    for scope in workloads:
        noop_samples, ping = samples(scope, PLAYBOOK, NOOP), samples(scope, PING, RUN)
        targets.append(
            _ratio_target("playbook no-op / ping playbook", scope, "<=", 1.3, noop_samples, ping)
        )

    for scope, threshold in (("N=100", 20.0), ("N=1000", 40.0)):
        community, playbook = samples(scope, COMMUNITY, APPLY), samples(scope, PLAYBOOK, APPLY)
        name = "looped postgresql_script / playbook apply"
        targets.append(_ratio_target(name, scope, ">=", threshold, community, playbook))

    for scope in workloads:
        for tool, label in ((ENGINE, "engine"), (PLAYBOOK, "playbook")):
            check, apply = samples(scope, tool, CHECK), samples(scope, tool, APPLY)
            name = f"{label} check mode / apply"
            targets.append(_ratio_target(name, scope, "<=", 1.2, check, apply))

    if forks:
        slowest, fastest = min(forks), max(forks)
        scope = f"forks {slowest} / forks {fastest}"
        targets.append(
            _ratio_target(
                "fan-out speed-up",
                scope,
                ">=",
                1.8,
                results.fanout_samples(slowest),
                results.fanout_samples(fastest),
            )
        )
    return targets


def measurement_dict(results: Results, measurement: Measurement) -> dict[str, Any]:
    """Return one entry of the JSON ``measurements`` list."""
    return {
        "workload": measurement.workload,
        "files": measurement.files,
        "tool": measurement.tool,
        "mode": measurement.mode,
        "samples_seconds": measurement.samples,
        "median_seconds": measurement.median if measurement.samples else None,
        "ratio_to_floor": results.ratio_to_floor(measurement),
    }


def fanout_dict(measurement: FanoutMeasurement) -> dict[str, Any]:
    """Return one entry of the JSON ``fanout`` list."""
    return {
        "forks": measurement.forks,
        "databases": measurement.databases,
        "samples_seconds": measurement.samples,
        "median_seconds": measurement.median if measurement.samples else None,
    }


def results_from_document(document: dict[str, Any]) -> Results:
    """Rebuild the samples of a run from its JSON file (see report.write_json)."""
    results = Results()
    for entry in document["measurements"]:
        results.measurements.append(
            Measurement(
                entry["workload"],
                entry["files"],
                entry["tool"],
                entry["mode"],
                list(entry["samples_seconds"]),
            )
        )
    for entry in document["fanout"]:
        results.fanout.append(
            FanoutMeasurement(entry["forks"], entry["databases"], list(entry["samples_seconds"]))
        )
    return results
