"""Playbooks and the fan-out inventory that the benchmark writes to its scratch directory.

Every playbook takes the connection from libpq's environment (PGHOST, PGPORT, PGUSER,
PGPASSWORD, PGDATABASE), which the benchmark sets for each run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MIGRATE = """\
- name: Apply migrations with dbops.migrations
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Apply pending migrations
      dbops.migrations.postgresql_migrate:
        path: "{{ bench_migrations_path }}"
"""

# One loop item, and so one module run, per migration file, as a playbook without this
# collection would apply them. postgresql_script sends a file as one query in autocommit mode,
# so the server runs each file as one implicit transaction.
COMMUNITY = """\
- name: Apply migrations with community.postgresql
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Run each migration file
      community.postgresql.postgresql_script:
        path: "{{ item }}"
      loop: "{{ bench_migration_files }}"
"""

PING = """\
- name: Measure the cost of Ansible itself
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Ping localhost
      ansible.builtin.ping:
"""

FANOUT = """\
- name: Apply migrations to one database per host
  hosts: all
  gather_facts: false
  tasks:
    - name: Apply pending migrations
      dbops.migrations.postgresql_migrate:
        path: "{{ bench_migrations_path }}"
        login_db: "{{ bench_database }}"
"""


@dataclass(frozen=True)
class Playbooks:
    """Paths of the playbooks written by ``write_playbooks``."""

    migrate: Path
    community: Path
    ping: Path
    fanout: Path


def write_playbooks(directory: Path) -> Playbooks:
    """Write the four playbooks into ``directory`` and return their paths."""
    playbooks = Playbooks(
        migrate=directory / "migrate.yml",
        community=directory / "community.yml",
        ping=directory / "ping.yml",
        fanout=directory / "fanout.yml",
    )
    playbooks.migrate.write_text(MIGRATE, encoding="utf-8")
    playbooks.community.write_text(COMMUNITY, encoding="utf-8")
    playbooks.ping.write_text(PING, encoding="utf-8")
    playbooks.fanout.write_text(FANOUT, encoding="utf-8")
    return playbooks


def fanout_host(index: int) -> str:
    """Return the inventory name of fan-out host ``index`` (counted from 1)."""
    return f"db{index:02d}"


def write_fanout_inventory(path: Path, databases: list[str], python: str) -> None:
    """Write a YAML inventory with one local host per database, in ``bench_database``.

    ``python`` is the interpreter that runs the modules. It is set explicitly because hosts
    other than the implicit localhost would otherwise go through interpreter discovery.
    """
    hosts = {
        fanout_host(index): {"bench_database": name}
        for index, name in enumerate(databases, start=1)
    }
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": python},
            "hosts": hosts,
        }
    }
    # JSON is valid YAML, and the standard library writes it.
    path.write_text(json.dumps(inventory, indent=2) + "\n", encoding="utf-8")
