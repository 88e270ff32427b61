"""The migration benchmark in its quickest mode: it runs end to end and writes its JSON.

The figures themselves are not asserted: on a shared machine they vary from run to run, and
docs/benchmarks.md reads the targets from a full run instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from playbook_run import REPO_ROOT

# The benchmark starts its own PostgreSQL server and runs ansible-playbook, like the tests
# that these markers select.
pytestmark = [pytest.mark.integration, pytest.mark.playbook]

QUICKEST_OPTIONS = (
    "--sizes",
    "10",
    "--repeat",
    "1",
    "--skip-community",
    "--skip-fanout",
    "--no-chart",
)
TIMEOUT_SECONDS = 300

TOP_LEVEL_KEYS = {"environment", "settings", "measurements", "fanout", "targets"}
MEASUREMENT_KEYS = {
    "workload",
    "files",
    "tool",
    "mode",
    "samples_seconds",
    "median_seconds",
    "ratio_to_floor",
}
TARGET_KEYS = {
    "name",
    "scope",
    "comparison",
    "threshold",
    "unit",
    "value",
    "ratio_of_medians",
    "met",
}
EXPECTED_RUNS = {
    (workload, tool, mode)
    for workload in ("N=10", "shipped")
    for tool, mode in (
        ("psql", "apply"),
        ("engine", "apply"),
        ("engine", "check"),
        ("engine", "no-op"),
        ("postgresql_migrate", "apply"),
        ("postgresql_migrate", "check"),
        ("postgresql_migrate", "no-op"),
        ("ping", "run"),
    )
}


def test_bench_quickest_run_writes_json(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.migrate", *QUICKEST_OPTIONS]
    completed = subprocess.run(
        [*command, "--output-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "psql, one connection (floor)" in completed.stdout, completed.stdout
    document = json.loads((tmp_path / "migrate_bench.json").read_text(encoding="utf-8"))
    assert set(document) == TOP_LEVEL_KEYS

    measurements = document["measurements"]
    assert {(m["workload"], m["tool"], m["mode"]) for m in measurements} == EXPECTED_RUNS
    for measurement in measurements:
        assert set(measurement) == MEASUREMENT_KEYS, measurement
        assert len(measurement["samples_seconds"]) == 1, measurement
        assert measurement["median_seconds"] > 0, measurement
        assert measurement["ratio_to_floor"] > 0, measurement

    assert document["fanout"] == []
    assert document["settings"]["community_runs"] == {"N=10": 0, "shipped": 0}
    targets = document["targets"]
    assert targets, "no targets in the JSON"
    for target in targets:
        assert set(target) == TARGET_KEYS, target
    check_targets = [t for t in targets if t["scope"] == "N=10" and "check" in t["name"]]
    assert len(check_targets) == 2, targets
    assert all(t["value"] is not None for t in check_targets), check_targets
