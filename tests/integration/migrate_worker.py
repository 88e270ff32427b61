"""Run api.migrate once with parameters read from a JSON file, and print the outcome as JSON.

The concurrency tests start several of these at once. On success the output is
``{"result": <task result>}`` and the exit status 0. On a MigrationError it is
``{"error": <class name>, "message": <message>}`` and the exit status 1.

Run it as ``python -m ansible_collections.dbops.migrations.tests.integration.migrate_worker
PARAMS_FILE`` with the repository's ``.collections`` directory on PYTHONPATH.
"""

from __future__ import annotations

import json
import sys

from ansible_collections.dbops.migrations.plugins.module_utils._migrations import api
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    MigrationError,
)


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        params = json.load(handle)
    try:
        result = api.migrate(params, check_mode=False, diff=False, warn=lambda _warning: None)
    except MigrationError as error:
        json.dump({"error": type(error).__name__, "message": str(error)}, sys.stdout)
        return 1
    json.dump({"result": result}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
