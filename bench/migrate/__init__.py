"""Benchmark of applying migrations: psql, the engine, ansible-playbook and postgresql_script.

Run it with ``make bench``, or ``.venv/bin/python -m bench.migrate --help`` from the
repository root after ``make setup``. docs/benchmarks.md describes the method.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# tools/ contains the throwaway server harness, and .collections/ makes the checkout importable
# as ansible_collections.dbops.migrations (`make setup` creates the link in it).
for _extra in (REPO_ROOT / "tools", REPO_ROOT / ".collections"):
    if str(_extra) not in sys.path:
        sys.path.insert(0, str(_extra))
