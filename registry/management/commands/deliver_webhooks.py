"""``manage.py deliver_webhooks [--once]``: the webhook delivery worker (``registry.events.worker``)."""

import signal
from typing import Any

from django.core.management.base import BaseCommand

from registry.events import worker


class Command(BaseCommand):
    help = "Deliver webhooks: turn new events into deliveries and POST them, until stopped."
    # It runs wherever the server runs, as its child: the server does not refuse to start over a
    # system check (``manage.py check`` and ``migrate`` report them), and neither does this.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="one round, then exit")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["once"]:
            done = worker.run_once()
            if options["verbosity"] >= 1:
                self.stdout.write(f"{done} events dispatched and deliveries attempted")
            return
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
        signal.signal(signal.SIGINT, lambda *_: stop.append(True))
        worker.run(lambda: bool(stop))
