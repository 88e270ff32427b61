"""Tests of the ansible-playbook helpers shared by the demo and the run_playbook fixture."""

from __future__ import annotations

import os

import pytest

from playbook_run import ANSIBLE_PLAYBOOK, host_recap, parse_play_recap, playbook_environment

TWO_HOST_OUTPUT = """\
PLAY [Deploy] ******************************************************************

TASK [dbops.migrations.postgresql_migrate] *************************************
changed: [db1]
ok: [db2]

PLAY RECAP *********************************************************************
db1                        : ok=3    changed=1    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0
db2                        : ok=2    changed=0    unreachable=0    failed=1    skipped=1    rescued=0    ignored=0
"""  # noqa: E501 - recap lines are copied verbatim from ansible-playbook


def test_recap_counts_per_host() -> None:
    recaps = parse_play_recap(TWO_HOST_OUTPUT)

    assert sorted(recaps) == ["db1", "db2"]
    assert recaps["db1"] == {
        "ok": 3,
        "changed": 1,
        "unreachable": 0,
        "failed": 0,
        "skipped": 0,
        "rescued": 0,
        "ignored": 0,
    }
    assert recaps["db2"]["failed"] == 1


def test_recap_ignores_task_output_lines() -> None:
    output = "localhost : ok=1 changed=1\nPLAY RECAP ***\nlocalhost : ok=2 changed=0\n"

    assert parse_play_recap(output) == {"localhost": {"ok": 2, "changed": 0}}


def test_host_recap_selects_host() -> None:
    assert host_recap(TWO_HOST_OUTPUT, "db2")["skipped"] == 1


def test_host_recap_unknown_host() -> None:
    with pytest.raises(
        ValueError,
        match=r"host 'localhost' not found in PLAY RECAP \(hosts found: \['db1', 'db2'\]\)",
    ):
        host_recap(TWO_HOST_OUTPUT)


def test_recap_missing() -> None:
    with pytest.raises(ValueError, match="no PLAY RECAP"):
        parse_play_recap("ERROR! the playbook could not be found\n")


def test_environment_drops_ansible_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", "/elsewhere")
    monkeypatch.setenv("ANSIBLE_CONFIG", "/elsewhere/ansible.cfg")
    monkeypatch.setenv("ANSIBLE_FORCE_COLOR", "1")

    environment = playbook_environment({"PGDATABASE": "tracking_hub"}, {"EXTRA": "1"})

    assert "ANSIBLE_COLLECTIONS_PATH" not in environment
    assert "ANSIBLE_CONFIG" not in environment
    assert "ANSIBLE_FORCE_COLOR" not in environment
    assert environment["ANSIBLE_NOCOLOR"] == "1"
    assert environment["PGDATABASE"] == "tracking_hub"
    assert environment["EXTRA"] == "1"
    assert environment["PATH"].split(os.pathsep)[0] == str(ANSIBLE_PLAYBOOK.parent)
