"""Run ansible-playbook the way the tests and the demo do, and parse its PLAY RECAP.

A recap line of the default stdout callback (ansible-core 2.19) looks like this, with the
columns padded by more spaces than shown::

    localhost : ok=3 changed=1 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# The venv's own ansible-playbook. sys.executable is not resolved, because resolving a venv's
# python symlink would lead to the base interpreter, which lacks ansible-core.
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

# Each of these would make ansible-playbook load another copy of the collection, or another
# ansible.cfg than the one at the repository root.
ANSIBLE_OVERRIDES = ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS", "ANSIBLE_CONFIG")

RECAP_HEADER = re.compile(r"^PLAY RECAP\b")
RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:[a-z_]+=\d+\s*)+)$")
COUNT = re.compile(r"([a-z_]+)=(\d+)")


def playbook_environment(
    libpq_env: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return os.environ with ``libpq_env`` and ``extra`` added, ready for ansible-playbook.

    ANSIBLE_OVERRIDES are removed, so the ansible.cfg at the repository root decides where
    collections are found. The venv's bin directory goes first on PATH, and colour is off so
    that the output can be parsed.
    """
    environment = {
        name: value for name, value in os.environ.items() if name not in ANSIBLE_OVERRIDES
    }
    environment.pop("ANSIBLE_FORCE_COLOR", None)
    search_path = [str(ANSIBLE_PLAYBOOK.parent), environment.get("PATH", "")]
    environment["PATH"] = os.pathsep.join(search_path)
    environment["ANSIBLE_NOCOLOR"] = "1"
    environment.update(libpq_env)
    environment.update(extra or {})
    return environment


def parse_play_recap(output: str) -> dict[str, dict[str, int]]:
    """Return the counts of each host in the last PLAY RECAP of ``output``.

    Example result: ``{"localhost": {"ok": 3, "changed": 1, "unreachable": 0, ...}}``.
    Raises ValueError when ``output`` has no PLAY RECAP, for example after a syntax error.
    """
    lines = output.splitlines()
    headers = [index for index, line in enumerate(lines) if RECAP_HEADER.match(line)]
    if not headers:
        raise ValueError("no PLAY RECAP in the ansible-playbook output")
    recaps: dict[str, dict[str, int]] = {}
    for line in lines[headers[-1] + 1 :]:
        match = RECAP_LINE.match(line.strip())
        if match is None:
            continue
        counts = {name: int(value) for name, value in COUNT.findall(match["counts"])}
        recaps[match["host"]] = counts
    return recaps


def host_recap(output: str, host: str = "localhost") -> dict[str, int]:
    """Return the PLAY RECAP counts of ``host``, such as ``{"ok": 3, "changed": 0, ...}``.

    Raises ValueError, listing the hosts found, when the recap has no line for ``host``.
    """
    recaps = parse_play_recap(output)
    if host not in recaps:
        raise ValueError(f"host {host!r} not found in PLAY RECAP (hosts found: {sorted(recaps)})")
    return recaps[host]
