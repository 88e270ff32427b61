"""Run every measurement in rounds, so that noise from other load spreads over all tools.

Within a workload, each round runs every tool once in a fixed order: first apply (psql, the
engine, postgresql_migrate, postgresql_script), check mode (engine, postgresql_migrate), then
no-op reruns (engine, postgresql_migrate) and the ping playbook. A first apply or check run
gets a fresh database. The no-op runs share one database that the engine migrated before
the first round.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

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
    FanoutMeasurement,
    Measurement,
    Results,
)
from .runners import (
    DatabaseNames,
    Tools,
    create_databases,
    drop_databases,
    fresh_database,
    time_community,
    time_engine,
    time_fanout,
    time_ping,
    time_playbook,
    time_psql,
    write_community_vars,
    write_psql_script,
)
from .workloads import Workload

LOG = logging.getLogger("bench")

# Looped postgresql_script runs one module per file, so at this many files one run takes
# minutes; such workloads get ``community_large_repeat`` runs.
LARGE_WORKLOAD_FILES = 1000


@dataclass
class Settings:
    """The workloads and parts to measure, and the number of runs of each."""

    sizes: list[int]
    repeat: int = 5
    community: bool = True
    community_large_repeat: int = 1
    fanout: bool = True
    forks: list[int] = field(default_factory=lambda: [1, 5, 10])
    fanout_databases: int = 50

    def community_repeat(self, workload: Workload) -> int:
        """Return how many runs of looped postgresql_script ``workload`` gets."""
        if not self.community:
            return 0
        if len(workload.scripts) >= LARGE_WORKLOAD_FILES:
            return min(self.repeat, self.community_large_repeat)
        return self.repeat


def _measurement(results: Results, workload: Workload, tool: str, mode: str) -> Measurement:
    measurement = Measurement(workload.name, len(workload.scripts), tool, mode)
    results.measurements.append(measurement)
    return measurement


def _community_note(measurement: Measurement, measured: bool) -> str:
    return f", postgresql_script {measurement.samples[-1]:.3f} s" if measured else ""


def warm_up(tools: Tools, names: DatabaseNames, workload: Workload, community: bool) -> None:
    """Run each tool once, untimed, so that cold caches do not land in the first round."""
    count = len(workload.scripts)
    time_ping(tools)
    with fresh_database(tools.cluster, names) as database:
        time_engine(tools, workload, database, check_mode=False, expected=count)
    with fresh_database(tools.cluster, names) as database:
        time_playbook(tools, workload, database, check_mode=False, changed=True)
    if community:
        variables = write_community_vars(tools, workload)
        with fresh_database(tools.cluster, names) as database:
            time_community(tools, workload, variables, database)


def measure_workload(
    tools: Tools, names: DatabaseNames, workload: Workload, settings: Settings, results: Results
) -> None:
    """Add the first apply, check and no-op measurements of ``workload`` to ``results``."""
    count = len(workload.scripts)
    cluster = tools.cluster
    floor_script = write_psql_script(tools, workload)
    community_runs = settings.community_repeat(workload)

    floor = _measurement(results, workload, FLOOR, APPLY)
    engine_apply = _measurement(results, workload, ENGINE, APPLY)
    playbook_apply = _measurement(results, workload, PLAYBOOK, APPLY)
    community_vars = write_community_vars(tools, workload)
    community_apply = Measurement(workload.name, count, COMMUNITY, APPLY)
    if community_runs:
        results.measurements.append(community_apply)
    engine_check = _measurement(results, workload, ENGINE, CHECK)
    playbook_check = _measurement(results, workload, PLAYBOOK, CHECK)
    engine_noop = _measurement(results, workload, ENGINE, NOOP)
    playbook_noop = _measurement(results, workload, PLAYBOOK, NOOP)
    ping = _measurement(results, workload, PING, RUN)

    migrated = names.next()
    create_databases(cluster, [migrated])
    try:
        time_engine(tools, workload, migrated, check_mode=False, expected=count)
        for round_number in range(1, settings.repeat + 1):
            with fresh_database(cluster, names) as database:
                floor.samples.append(time_psql(tools, floor_script, database))
            with fresh_database(cluster, names) as database:
                engine_apply.samples.append(time_engine(tools, workload, database, False, count))
            with fresh_database(cluster, names) as database:
                playbook_apply.samples.append(time_playbook(tools, workload, database, False, True))
            if round_number <= community_runs:
                with fresh_database(cluster, names) as database:
                    seconds = time_community(tools, workload, community_vars, database)
                    community_apply.samples.append(seconds)
            with fresh_database(cluster, names) as database:
                engine_check.samples.append(time_engine(tools, workload, database, True, count))
            with fresh_database(cluster, names) as database:
                playbook_check.samples.append(time_playbook(tools, workload, database, True, True))
            engine_noop.samples.append(time_engine(tools, workload, migrated, False, 0))
            playbook_noop.samples.append(time_playbook(tools, workload, migrated, False, False))
            ping.samples.append(time_ping(tools))
            LOG.info(
                "%s round %d of %d, first apply: psql %.3f s, engine %.3f s, playbook %.3f s%s",
                workload.name,
                round_number,
                settings.repeat,
                floor.samples[-1],
                engine_apply.samples[-1],
                playbook_apply.samples[-1],
                _community_note(community_apply, round_number <= community_runs),
            )
    finally:
        drop_databases(cluster, [migrated])


def measure_fanout(
    tools: Tools, names: DatabaseNames, workload: Workload, settings: Settings, results: Results
) -> None:
    """Add one fan-out measurement per forks setting, each on fresh databases."""
    measurements = [FanoutMeasurement(forks, settings.fanout_databases) for forks in settings.forks]
    results.fanout.extend(measurements)
    for round_number in range(1, settings.repeat + 1):
        for measurement in measurements:
            databases = [names.next() for _index in range(settings.fanout_databases)]
            create_databases(tools.cluster, databases)
            try:
                seconds = time_fanout(tools, workload, databases, measurement.forks, sys.executable)
            finally:
                drop_databases(tools.cluster, databases)
            measurement.samples.append(seconds)
            LOG.info(
                "fan-out round %d of %d: forks %d took %.3f s",
                round_number,
                settings.repeat,
                measurement.forks,
                seconds,
            )
