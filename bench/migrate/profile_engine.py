"""Profile the engine with cProfile on synthetic migrations, to see where its time goes.

    .venv/bin/python -m bench.migrate.profile_engine [--size 1000] [--mode noop] [--runs 5]

For each mode it runs the engine ``--runs`` times under one profiler, timed as the benchmark
times it: connect, read and checksum the files, and engine.run. It prints the functions with
the largest own time and the largest cumulative time, each with its share of the profiled
wall time. cProfile measures wall time, so time spent waiting for the server shows up in the
psycopg2 call that waited. The profiler adds its own cost to every Python call, so shares of
Python-heavy functions come out somewhat higher than without it. The .pstats files go to the
output directory, for snakeviz or ``python -m pstats``.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from . import REPO_ROOT
from .playbooks import write_playbooks
from .runners import DatabaseNames, Tools, create_databases, drop_databases, time_engine
from .workloads import Workload, write_synthetic

try:
    from pgcluster import PgCluster
except ModuleNotFoundError as error:
    sys.exit(f"Cannot import the benchmark's dependencies ({error}). Run `make setup` first.")

MODES = ("apply", "noop", "check")
DEFAULT_OUTPUT_DIR = REPO_ROOT / "bench" / "results"


def _profile_runs(tools: Tools, workload: Workload, mode: str, runs: int) -> cProfile.Profile:
    """Profile ``runs`` engine runs. Each apply or check run gets a fresh database."""
    count = len(workload.scripts)
    names = DatabaseNames(prefix=f"profile_{mode}")
    profiler = cProfile.Profile()
    migrated = None
    if mode == "noop":
        migrated = names.next()
        create_databases(tools.cluster, [migrated])
        time_engine(tools, workload, migrated, check_mode=False, expected=count)
    try:
        for _run in range(runs):
            database = migrated or names.next()
            if migrated is None:
                create_databases(tools.cluster, [database])
            expected = 0 if mode == "noop" else count
            profiler.enable()
            time_engine(tools, workload, database, mode == "check", expected)
            profiler.disable()
            if migrated is None:
                drop_databases(tools.cluster, [database])
    finally:
        if migrated is not None:
            drop_databases(tools.cluster, [migrated])
    return profiler


def _location(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    if filename == "~":
        return function
    marker = "ansible_collections/dbops/migrations/"
    if marker in filename:
        filename = filename.split(marker, 1)[1]
    else:
        filename = Path(filename).name
    return f"{filename}:{line} {function}"


def top_functions(stats: pstats.Stats, column: int, count: int) -> list[str]:
    """Return lines for the ``count`` functions with the largest own (2) or cumulative (3) time."""
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = sorted(stats.stats.items(), key=lambda item: item[1][column], reverse=True)  # type: ignore[attr-defined]
    lines = []
    for key, (_primitive, calls, own, cumulative, _callers) in entries[:count]:
        lines.append(
            f"{own:8.3f} s {own / total:6.1%}  {cumulative:8.3f} s {cumulative / total:6.1%}"
            f"  {calls:>8}  {_location(key)}"
        )
    return lines


def report(stats: pstats.Stats, mode: str, size: int, runs: int, count: int) -> str:
    total = stats.total_tt  # type: ignore[attr-defined]
    header = "     own s    own%     cumul s  cumul%     calls  function"
    plural = "" if runs == 1 else "s"
    parts = [f"== engine {mode}, N={size}, {runs} run{plural}, {total:.3f} s profiled in total"]
    parts += ["-- by own time", header, *top_functions(stats, 2, count)]
    parts += ["-- by cumulative time", header, *top_functions(stats, 3, count)]
    return "\n".join(parts)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.migrate.profile_engine",
        description="Profile the migration engine with cProfile on synthetic migrations.",
    )
    parser.add_argument("--size", type=int, default=1000, help="synthetic files (default: 1000)")
    parser.add_argument(
        "--mode", choices=[*MODES, "all"], default="all", help="what to profile (default: all)"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per mode (default: 5)")
    parser.add_argument("--top", type=int, default=20, help="functions listed (default: 20)")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help="directory for profile_<mode>_<size>.pstats (default: bench/results)",
    )
    args = parser.parse_args(argv)
    for name in ("size", "runs", "top"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)} is invalid: expected 1 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="profile: %(message)s", stream=sys.stderr)
    modes = MODES if args.mode == "all" else (args.mode,)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    with PgCluster() as cluster, tempfile.TemporaryDirectory(prefix="migrate-profile-") as scratch:
        scratch_dir = Path(scratch)
        # Only time_engine runs here, so psql and the community venv are never used.
        tools = Tools(cluster, scratch_dir, write_playbooks(scratch_dir), Path("psql"), None)
        workload = write_synthetic(scratch_dir, args.size)
        for mode in modes:
            profiler = _profile_runs(tools, workload, mode, args.runs)
            path = args.output_dir / f"profile_{mode}_{args.size}.pstats"
            profiler.dump_stats(path)
            stats = pstats.Stats(profiler)
            print(report(stats, mode, args.size, args.runs, args.top), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
