#!/usr/bin/env python
"""Django's command-line utility for CRoW."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")
    # The query bound keeps a server's threads from waiting on a hung database; a command (gc, backup,
    # migrate on a large registry) may rightly run one query for minutes. Set in the environment, it applies.
    os.environ.setdefault("CROW_DB_QUERY_TIMEOUT", "0")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
