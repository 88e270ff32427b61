"""The application_name of a run: the default, the AWX job id, and the length limit."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.application_name import (
    MAX_LENGTH,
    application_name,
)
from ansible_collections.dbops.migrations.plugins.plugin_utils.migration_files import with_awx_job


@pytest.fixture(autouse=True)
def no_job_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOB_ID", raising=False)


def test_default_names_collection_and_module() -> None:
    assert application_name(None, "postgresql_migrate") == "dbops.migrations postgresql_migrate"


def test_task_option_kept() -> None:
    assert application_name("nightly deploy", "postgresql_migrate") == "nightly deploy"


def test_job_id_from_environment_appended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_ID", "77")

    assert application_name("nightly deploy", "postgresql_migrate") == "nightly deploy awx job 77"


def test_job_id_appended_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOB_ID", "77")
    args = with_awx_job({}, {"awx_job_id": 77}, "postgresql_migrate")

    name = application_name(args["application_name"], "postgresql_migrate")

    assert name == "dbops.migrations postgresql_migrate awx job 77"


def test_plugin_extends_the_task_option() -> None:
    args = with_awx_job({"application_name": "deploy"}, {"tower_job_id": 9}, "postgresql_migrate")

    assert args["application_name"] == "deploy awx job 9"


def test_plugin_leaves_arguments_alone_outside_awx() -> None:
    args = {"path": ["files/sql"]}

    assert with_awx_job(args, {}, "postgresql_migrate") == args


def test_name_cut_to_postgresql_limit() -> None:
    name = application_name("x" * 100, "postgresql_migrate")

    assert name == "x" * MAX_LENGTH
