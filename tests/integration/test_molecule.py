"""Run the Molecule scenarios under molecule/, whose base configuration is .config/molecule.

The `default` scenario runs its whole test sequence against a throwaway PostgreSQL server of
the major version in DBOPS_PG_MAJOR, so it runs in every pass of the version matrix. The
`containers` scenario needs Docker or Podman, so here its playbooks are only syntax-checked
and every Molecule file is linted.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from playbook_run import ANSIBLE_PLAYBOOK, REPO_ROOT, playbook_environment

VENV_BIN = Path(sys.executable).parent
MOLECULE = VENV_BIN / "molecule"
ANSIBLE_LINT = VENV_BIN / "ansible-lint"
SCENARIOS = REPO_ROOT / "molecule"
BASE_CONFIG = REPO_ROOT / ".config" / "molecule" / "config.yml"

# A whole `molecule test -s default` took 50 to 90 s on 2 cores shared with other jobs.
MOLECULE_TIMEOUT_SECONDS = 900
LINT_TIMEOUT_SECONDS = 300


def run_tool(
    command: Sequence[str | Path], ephemeral_dir: Path | None, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in the repository root without colour, and return it without raising.

    ``ephemeral_dir`` becomes MOLECULE_EPHEMERAL_DIRECTORY, so that the run keeps its
    inventory, server state and connection files apart from other runs.
    """
    extra = {"NO_COLOR": "1", "PY_COLORS": "0"}
    if ephemeral_dir is not None:
        extra["MOLECULE_EPHEMERAL_DIRECTORY"] = str(ephemeral_dir)
    try:
        return subprocess.run(
            [str(part) for part in command],
            cwd=REPO_ROOT,
            env=playbook_environment({}, extra),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        output = f"{as_text(error.stdout)}\n{as_text(error.stderr)}"
        pytest.fail(f"{command[0]} timed out after {timeout:g} s:\n{output}")


def as_text(output: str | bytes | None) -> str:
    """Return captured output as text: TimeoutExpired can carry bytes even with text=True."""
    if isinstance(output, bytes):
        return output.decode("utf-8", errors="replace")
    return output or ""


def output_of(run: subprocess.CompletedProcess[str]) -> str:
    return f"command: {' '.join(run.args)}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"


@pytest.mark.integration
@pytest.mark.playbook
@pytest.mark.matrix
def test_default_scenario_passes(tmp_path: Path) -> None:
    """destroy, syntax, create, check, converge, idempotence, verify and destroy succeed."""
    run = run_tool(
        [MOLECULE, "test", "--scenario-name", "default"], tmp_path, MOLECULE_TIMEOUT_SECONDS
    )

    assert run.returncode == 0, output_of(run)


def test_containers_scenario_syntax(tmp_path: Path) -> None:
    """Molecule accepts the scenario's configuration, and its converge playbook parses."""
    run = run_tool(
        [MOLECULE, "syntax", "--scenario-name", "containers"], tmp_path, LINT_TIMEOUT_SECONDS
    )

    assert run.returncode == 0, output_of(run)


def test_containers_create_and_destroy_syntax() -> None:
    playbooks = [SCENARIOS / "containers" / name for name in ("create.yml", "destroy.yml")]

    run = run_tool([ANSIBLE_PLAYBOOK, "--syntax-check", *playbooks], None, LINT_TIMEOUT_SECONDS)

    assert run.returncode == 0, output_of(run)


def test_molecule_files_lint() -> None:
    """ansible-lint checks the playbooks, the configuration schema and, through yamllint, YAML.

    The role that converge.yml includes is linted by `make lint`, so roles/ is excluded here.
    """
    run = run_tool(
        [
            ANSIBLE_LINT,
            "--offline",
            "--strict",
            "--nocolor",
            "--exclude=roles/",
            "--",
            SCENARIOS,
            BASE_CONFIG,
        ],
        None,
        LINT_TIMEOUT_SECONDS,
    )

    assert run.returncode == 0, output_of(run)
