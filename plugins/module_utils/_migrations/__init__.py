# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration engine: sources, SQL scanning, planning, locking and execution.

The package does not import Ansible. Modules import it, call it, and turn its
exceptions into task results in one place.
"""
