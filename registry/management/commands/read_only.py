"""``manage.py read_only on|off|status``: switch the registry's read-only mode, for every replica.

Each server process sees the change within ``registry.maintenance.readonly.REFRESH``
seconds. ``CROW_READ_ONLY=1`` in a server's environment keeps that server
read-only whatever the switch says; ``status`` shows this process's view.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from registry.maintenance import readonly
from registry.management.migrations_state import require_migrated


class Command(BaseCommand):
    help = "Switch the registry's read-only mode on or off for every replica, or show it (status)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=("on", "off", "status"))

    def handle(self, *args: Any, **options: Any) -> None:
        require_migrated("read_only")
        action = options["action"]
        current = readonly.switch(action == "on") if action != "status" else readonly.state()
        self.stdout.write(current.describe())
        if action == "off" and current.forced:
            self.stderr.write(
                "the switch is off, but CROW_READ_ONLY is set in this environment: servers started with it"
                " stay read-only until they are restarted without it"
            )
        elif action == "on" and options["verbosity"] >= 1:
            self.stdout.write(f"every server refuses pushes and deletes within {readonly.REFRESH:g} s")
