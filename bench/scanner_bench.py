"""Time the SQL scanner on a large synthetic migration file.

The file mixes CREATE TABLE statements, multi-row INSERTs whose string literals contain
semicolons, doubled quotes and backslash escapes, PL/pgSQL functions in dollar quotes, COMMENT
ON statements and both kinds of comment. Its content depends only on --size-mb, so two runs
of the same size scan the same text.

Run it after ``make setup``, which creates the .collections link that makes the checkout
importable as ansible_collections.dbops.migrations:

    .venv/bin/python bench/scanner_bench.py [--size-mb 5] [--runs 5] [--profile]

Sizes are in megabytes of UTF-8 text (1 MB = 1,000,000 bytes).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_PATH = REPO_ROOT / ".collections"
BYTES_PER_MB = 1_000_000
SEED = 20240601

sys.path.insert(0, str(COLLECTIONS_PATH))
try:
    from ansible_collections.dbops.migrations.plugins.module_utils._migrations.scanner import scan
except ModuleNotFoundError as error:
    sys.exit(f"Cannot import the scanner ({error}). Run `make setup` in {REPO_ROOT} first.")

WORDS = ["alpha", "beta", "gamma", "delta", "invoice", "customer", "ledger", "total", "note"]


def _table_block(table: int, block: int, rng: random.Random) -> tuple[str, int]:
    columns = ",\n".join(
        f"    {rng.choice(WORDS)}_{column} {rng.choice(['text', 'bigint', 'numeric(12, 2)'])}"
        for column in range(rng.randint(3, 8))
    )
    text = (
        f"-- Table {table}: created by the benchmark; the name is synthetic.\n"
        f"CREATE TABLE bench_{table} (\n    id bigint PRIMARY KEY,\n    note text,\n"
        f"    owner text,\n    detail text,\n{columns}\n);\n"
        f"COMMENT ON TABLE bench_{table} IS 'Synthetic table {table}; it''s for timing only.';\n"
    )
    return text, 2


def _insert_block(table: int, block: int, rng: random.Random) -> tuple[str, int]:
    rows = []
    # Ids start at a multiple of 100 per block, so no two blocks of one table repeat an id.
    for row in range(block * 100, block * 100 + rng.randint(5, 20)):
        note = f"{rng.choice(WORDS)}; {rng.choice(WORDS)} -- not a comment /* nor this */"
        escaped = f"E'line\\none; tab\\t\\'quoted\\' {rng.choice(WORDS)}'"
        rows.append(f"    ({row}, '{note}', 'O''Brien; {row}', {escaped})")
    text = f"INSERT INTO bench_{table} (id, note, owner, detail) VALUES\n" + ",\n".join(rows)
    return text + ";\n", 1


def _function_block(table: int, block: int, rng: random.Random) -> tuple[str, int]:
    tag = rng.choice(["$$", "$body$", "$fn$"])
    text = (
        f"/* Function {table}: the body hides semicolons and 'quotes'.\n"
        f"   /* A nested comment; still inside. */ */\n"
        f"CREATE OR REPLACE FUNCTION bench_touch_{table}() RETURNS trigger\n"
        f"LANGUAGE plpgsql AS {tag}\n"
        "BEGIN\n"
        "    NEW.note := coalesce(NEW.note, 'none; yet');\n"
        "    IF NEW.id < 0 THEN\n"
        "        RAISE EXCEPTION 'negative id %; rejected', NEW.id;\n"
        "    END IF;\n"
        "    RETURN NEW;\n"
        "END;\n"
        f"{tag};\n"
    )
    return text, 1


# One cycle creates table bench_N, fills it and adds its trigger function.
BLOCK_BUILDERS = [_table_block, _insert_block, _insert_block, _insert_block, _function_block]


def build_migration(size_mb: float) -> tuple[str, int]:
    """Build migration text of at least ``size_mb`` MB and return it with its statement count."""
    rng = random.Random(SEED)
    target_bytes = int(size_mb * BYTES_PER_MB)
    blocks: list[str] = []
    size = 0
    statements = 0
    block = 0
    while size < target_bytes:
        cycle, position = divmod(block, len(BLOCK_BUILDERS))
        text, count = BLOCK_BUILDERS[position](cycle, block, rng)
        blocks.append(text)
        size += len(text.encode("utf-8"))
        statements += count
        block += 1
    return "".join(blocks), statements


def time_scans(text: str, runs: int) -> tuple[list[float], list[float]]:
    """Scan ``text`` ``runs`` times and return the wall-clock and CPU seconds of each run."""
    wall_seconds = []
    cpu_seconds = []
    for _run in range(runs):
        wall_start = time.perf_counter()
        cpu_start = time.process_time()
        scan(text)
        cpu_seconds.append(time.process_time() - cpu_start)
        wall_seconds.append(time.perf_counter() - wall_start)
    return wall_seconds, cpu_seconds


def print_table(
    size_mb: float, statements: int, wall_seconds: list[float], cpu_seconds: list[float]
) -> None:
    # MB/s comes from the wall-clock time. CPU seconds well below it mean that other
    # processes had the cores during the run.
    header = f"{'run':<8} {'size MB':>8} {'statements':>11} {'seconds':>9} {'cpu s':>7} {'MB/s':>7}"
    print(header)
    rows = (
        ("best", min(wall_seconds), min(cpu_seconds)),
        ("median", statistics.median(wall_seconds), statistics.median(cpu_seconds)),
    )
    for label, wall, cpu in rows:
        print(
            f"{label:<8} {size_mb:>8.2f} {statements:>11} {wall:>9.3f} {cpu:>7.3f} "
            f"{size_mb / wall:>7.2f}"
        )
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"{len(wall_seconds)} runs, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores, load average {load}"
    )


def print_profile(text: str, limit: int = 15) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(scan, text)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(limit)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size-mb",
        type=float,
        default=5.0,
        help="size of the synthetic migration in MB of UTF-8 text (default: 5)",
    )
    parser.add_argument("--runs", type=int, default=5, help="number of timed scans (default: 5)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after timing, run one more scan under cProfile and print the slowest functions",
    )
    arguments = parser.parse_args()
    if arguments.size_mb <= 0:
        parser.error(f"--size-mb must be positive, got {arguments.size_mb}")
    if arguments.runs < 1:
        parser.error(f"--runs must be at least 1, got {arguments.runs}")
    return arguments


def main() -> int:
    arguments = parse_arguments()
    text, expected_statements = build_migration(arguments.size_mb)
    size_mb = len(text.encode("utf-8")) / BYTES_PER_MB

    # One untimed scan checks that the scanner reads the file as the generator wrote it, so
    # a timing never comes from a scan that stopped early at a problem.
    result = scan(text)
    if result.problems:
        line, message = result.problems[0]
        print(
            f"The scanner rejected the synthetic migration at line {line}: {message}. "
            "The scanner or this file's generator is wrong, so nothing was timed.",
            file=sys.stderr,
        )
        return 1
    if len(result.statements) != expected_statements:
        print(
            f"The scanner found {len(result.statements)} statements in the synthetic migration, "
            f"expected {expected_statements}. The scanner or this file's generator is wrong, "
            "so nothing was timed.",
            file=sys.stderr,
        )
        return 1

    wall_seconds, cpu_seconds = time_scans(text, arguments.runs)
    print_table(size_mb, len(result.statements), wall_seconds, cpu_seconds)
    if arguments.profile:
        print_profile(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
