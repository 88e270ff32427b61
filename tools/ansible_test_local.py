"""Run ansible-test on this checkout on the local machine, without containers.

Usage: python tools/ansible_test_local.py {sanity|units} [ansible-test options ...]

ansible-test must run inside a directory ``.../ansible_collections/dbops/migrations``, and it
resolves symlinks in the working directory, so the link in ``.collections/`` does not satisfy
it. This script therefore copies the files that git lists (tracked files, and untracked files
that .gitignore does not exclude) into ``ansible_collections/dbops/migrations`` in a temporary
directory. There it runs ``ansible-test <command> --local --python <this interpreter's
version> --color no`` with the options given on the command line, and then removes the copy.
The copy must be outside the repository: inside it, ansible-test would find the repository's
git work tree, where .gitignore excludes the copy, and test no file at all.

ansible-test creates a virtualenv for each sanity test in ``~/.ansible/test/venv``, and
bootstraps pip in it with a get-pip script that it downloads from a server of the Ansible
project. Machines that reach only package registries cannot download it, so HOME is set to
``.venv/ansible-test/home``, and its ansible-test cache gets an offline stand-in for that
script, which installs pip from the pip wheel on PyPI. The sanity tests then install their
pinned requirements from PyPI into their own virtualenvs, once; ``.venv`` itself stays as
requirements-test.txt makes it. ``ansible-test units`` uses this interpreter, and so the
packages of ``.venv``.

Exits with ansible-test's exit status.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
WORK_ROOT = REPO_ROOT / ".venv" / "ansible-test"
HOME = WORK_ROOT / "home"
COMMANDS = ("sanity", "units")

# The pip that ansible-core 2.19's ansible-test bootstraps into each sanity virtualenv
# (get_venv_packages() in ansible_test/_internal/python_requirements.py). When ansible-core
# changes it, ansible-test fails to download get_pip_<new version>.py and names that file in
# its error. Update the version here then.
BOOTSTRAP_PIP_VERSION = "24.2"

GET_PIP_STAND_IN = '''\
"""Offline stand-in for the get-pip script of pip {version}, written by {writer}.

ansible-test runs this file with pip's options in a new virtualenv that has no pip. It
installs pip from the wheel beside it, as get-pip installs the pip that it embeds.
"""

import os
import sys

CACHE_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(CACHE_DIR, "{wheel}"))

from pip._internal.cli.main import main  # noqa: E402

# These two are options of get-pip itself, which pip install does not know.
OWN_OPTIONS = ("--no-setuptools", "--no-wheel")
arguments = [argument for argument in sys.argv[1:] if argument not in OWN_OPTIONS]
sys.exit(main(["install", "--no-index", "--find-links", CACHE_DIR, *arguments]))
'''


def prepare_pip_bootstrap() -> None:
    """Put the get-pip stand-in and the pip wheel into ansible-test's cache under HOME."""
    cache_dir = HOME / ".ansible" / "test" / "cache"
    wheel = f"pip-{BOOTSTRAP_PIP_VERSION}-py3-none-any.whl"
    script = cache_dir / f"get_pip_{BOOTSTRAP_PIP_VERSION.replace('.', '_')}.py"
    if script.exists() and (cache_dir / wheel).exists():
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-deps",
            "--dest",
            str(cache_dir),
            f"pip=={BOOTSTRAP_PIP_VERSION}",
        ],
        check=True,
    )
    text = GET_PIP_STAND_IN.format(
        version=BOOTSTRAP_PIP_VERSION, writer="tools/ansible_test_local.py", wheel=wheel
    )
    script.write_text(text, encoding="utf-8")


def listed_files() -> list[str]:
    """Return the paths, relative to the repository, that git lists and that exist."""
    output = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    paths = sorted({path for path in output.decode("utf-8").split("\0") if path})
    return [path for path in paths if (REPO_ROOT / path).is_file()]


def copy_collection(parent: Path) -> Path:
    """Copy the listed files into ``parent``/ansible_collections/dbops/migrations; return it."""
    root = parent / "ansible_collections" / "dbops" / "migrations"
    for path in listed_files():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / path, target)
    return root


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.split("\n\n", 2)[1], file=sys.stderr)
        return 2
    command, options = argv[0], argv[1:]
    if command == "sanity":
        prepare_pip_bootstrap()
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    environment = dict(os.environ, HOME=str(HOME))
    environment["PATH"] = os.pathsep.join([str(VENV_BIN), environment.get("PATH", "")])
    with tempfile.TemporaryDirectory(prefix=f"dbops-ansible-test-{command}-") as parent:
        root = copy_collection(Path(parent))
        print(f"Running ansible-test {command} in a copy of the checkout: {root}", flush=True)
        run = subprocess.run(
            [
                str(VENV_BIN / "ansible-test"),
                command,
                "--local",
                "--python",
                python_version,
                "--color",
                "no",
                *options,
            ],
            cwd=root,
            env=environment,
            check=False,
        )
    return run.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
