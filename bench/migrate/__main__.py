"""Command line: ``python -m bench.migrate [--sizes 10,100] [--repeat 5] [--skip-...]``.

Starts a throwaway PostgreSQL server on 127.0.0.1, measures every tool on every workload,
prints the tables, and writes migrate_bench.json, migrate_bench.md and migrate_bench.png to
the output directory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import REPO_ROOT

try:
    from pgcluster import PgCluster, PgClusterError

    from .chart import draw, matplotlib_available
    from .measure import Settings, measure_fanout, measure_workload, warm_up
    from .playbooks import write_playbooks
    from .report import render, write_json
    from .results import Results, evaluate_targets, results_from_document
    from .runners import BenchError, DatabaseNames, Tools, find_psql
    from .workloads import shipped, write_synthetic
except ModuleNotFoundError as error:
    sys.exit(f"Cannot import the benchmark's dependencies ({error}). Run `make setup` first.")

LOG = logging.getLogger("bench")

DEFAULT_OUTPUT_DIR = REPO_ROOT / "bench" / "results"
DEFAULT_COMMUNITY_VENV = REPO_ROOT / "bench" / ".venv-community"
RESULT_NAME = "migrate_bench"


def _positive_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is invalid: expected numbers such as 10,100"
        ) from None
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: expected numbers of 1 or more")
    return values


def _positive(text: str) -> int:
    values = _positive_list(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: expected one number")
    return values[0]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.migrate",
        description="Benchmark applying migrations against a throwaway PostgreSQL server.",
    )
    parser.add_argument(
        "--sizes",
        type=_positive_list,
        default=[10, 100, 1000],
        help="numbers of synthetic migration files, comma-separated (default: 10,100,1000)",
    )
    parser.add_argument(
        "--repeat", type=_positive, default=5, help="runs of each measurement (default: 5)"
    )

    parser.add_argument(
        "--skip-community", action="store_true", help="do not measure looped postgresql_script"
    )
    parser.add_argument(
        "--community-large-repeat",
        type=_positive,
        default=1,
        help="runs of looped postgresql_script on workloads of 1000 files or more, at most "
        "--repeat (default: 1, because one run starts one module per file and takes minutes)",
    )
    parser.add_argument(
        "--community-venv",
        type=Path,
        default=DEFAULT_COMMUNITY_VENV,
        help="virtualenv with the ansible package, which contains community.postgresql "
        "(default: bench/.venv-community, made by `make bench`)",
    )

    parser.add_argument(
        "--skip-fanout", action="store_true", help="do not measure the deploy to many databases"
    )
    parser.add_argument(
        "--forks",
        type=_positive_list,
        default=[1, 5, 10],
        help="ansible-playbook --forks values for the fan-out, comma-separated (default: 1,5,10)",
    )
    parser.add_argument(
        "--fanout-databases",
        type=_positive,
        default=50,
        help="databases, one inventory host each, in the fan-out (default: 50)",
    )

    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help="directory for migrate_bench.json, .md and .png (default: bench/results)",
    )
    parser.add_argument("--no-chart", action="store_true", help="do not draw the PNG chart")
    parser.add_argument(
        "--report-only",
        type=Path,
        metavar="JSON",
        help="measure nothing: rewrite the tables, targets and chart from the samples in JSON, "
        "a migrate_bench.json of an earlier run",
    )
    return parser.parse_args(argv)


def community_playbook(venv: Path) -> Path:
    """Return the venv's ansible-playbook, or raise BenchError saying how to create it."""
    program = venv / "bin" / "ansible-playbook"
    if not os.access(program, os.X_OK):
        raise BenchError(
            f"{program} not found: `make bench` creates that venv with community.postgresql, "
            "or pass --skip-community."
        )
    return program


def community_version(venv: Path) -> str | None:
    """Return the version of community.postgresql in ``venv``, read from its MANIFEST.json."""
    pattern = "lib/python*/site-packages/ansible_collections/community/postgresql/MANIFEST.json"
    for manifest in venv.glob(pattern):
        return json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"]
    return None


def environment(cluster: PgCluster, tools: Tools, args: argparse.Namespace) -> dict[str, Any]:
    """Describe the machine and the software measured, for the JSON file."""
    from ansible.release import __version__ as ansible_core_version

    psql_version = subprocess.run(
        [str(tools.psql), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "ansible_core": ansible_core_version,
        "community_postgresql": None
        if args.skip_community
        else community_version(args.community_venv),
        "postgresql_server": cluster.version,
        "psql": psql_version,
        **git_state(),
    }


def git_state() -> dict[str, Any]:
    """Return the checked-out commit and the files changed since, or {} outside a checkout."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if head.returncode != 0:
        return {}
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", "plugins"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    changed = [line[3:] for line in status.stdout.splitlines()]
    return {"git_commit": head.stdout.strip(), "plugins_changed_since_commit": changed}


def run_benchmark(args: argparse.Namespace) -> int:
    settings = Settings(
        sizes=args.sizes,
        repeat=args.repeat,
        community=not args.skip_community,
        community_large_repeat=args.community_large_repeat,
        fanout=not args.skip_fanout,
        forks=args.forks,
        fanout_databases=args.fanout_databases,
    )
    community = None if args.skip_community else community_playbook(args.community_venv)
    draw_chart = not args.no_chart and matplotlib_available()
    if not args.no_chart and not draw_chart:
        LOG.warning("matplotlib is missing, so no chart: pip install -r requirements-bench.txt")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    results = Results()
    started = time.perf_counter()

    with PgCluster() as cluster, tempfile.TemporaryDirectory(prefix="migrate-bench-") as scratch:
        scratch_dir = Path(scratch)
        tools = Tools(
            cluster, scratch_dir, write_playbooks(scratch_dir), find_psql(cluster), community
        )
        env = environment(cluster, tools, args)
        LOG.info("PostgreSQL %s on %s:%s", cluster.version, cluster.host, cluster.port)
        names = DatabaseNames()
        workloads = [write_synthetic(scratch_dir, size) for size in settings.sizes]
        workloads.append(shipped())
        warm_up(tools, names, workloads[-1], settings.community)
        for workload in workloads:
            LOG.info("measuring %s (%d files)", workload.name, len(workload.scripts))
            measure_workload(tools, names, workload, settings, results)
        if settings.fanout:
            LOG.info("measuring the fan-out to %d databases", settings.fanout_databases)
            measure_fanout(tools, names, workloads[-1], settings, results)

    env["load_average_at_end"] = list(os.getloadavg())
    env["duration_seconds"] = round(time.perf_counter() - started, 1)
    forks = settings.forks if settings.fanout else []
    settings_dict = {
        "sizes": settings.sizes,
        "repeat": settings.repeat,
        "community_runs": {w.name: settings.community_repeat(w) for w in workloads},
        "fanout_forks": forks,
        "fanout_databases": settings.fanout_databases if settings.fanout else 0,
        "workloads": [workload.name for workload in workloads],
    }
    write_outputs(args.output_dir, results, env, settings_dict, draw_chart)
    return 0


def write_outputs(
    output_dir: Path,
    results: Results,
    env: dict[str, Any],
    settings: dict[str, Any],
    draw_chart: bool,
) -> None:
    """Evaluate the targets, print the tables, and write the JSON, Markdown and PNG files."""
    targets = evaluate_targets(results, settings["workloads"], settings["fanout_forks"])
    print(render(results, targets))
    json_path = output_dir / f"{RESULT_NAME}.json"
    write_json(json_path, results, targets, env, settings)
    (output_dir / f"{RESULT_NAME}.md").write_text(
        render(results, targets, markdown=True), encoding="utf-8"
    )
    if draw_chart:
        title = f"dbops.migrations benchmark, {env['started_at']}, {env['cpus']} CPUs"
        draw(output_dir / f"{RESULT_NAME}.png", results, settings["workloads"], title)
    LOG.info("wrote %s (the run took %.0f s)", json_path, env["duration_seconds"])


def report_only(args: argparse.Namespace) -> int:
    """Recompute the tables, targets and chart from the samples in an earlier JSON file."""
    document = json.loads(args.report_only.read_text(encoding="utf-8"))
    results = results_from_document(document)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    draw_chart = not args.no_chart and matplotlib_available()
    write_outputs(
        args.output_dir, results, document["environment"], document["settings"], draw_chart
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="bench: %(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    try:
        if args.report_only is not None:
            return report_only(args)
        return run_benchmark(args)
    except (BenchError, PgClusterError) as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
