from django.core.management.base import BaseCommand

from messaging.actions import presence_reset


class Command(BaseCommand):
    help = (
        "Forget every registered WebSocket connection (everyone offline). Run it when no server "
        "process is running, e.g. at start-up: a process that crashed cannot unregister its sockets."
    )

    def handle(self, *args, **options) -> None:
        count = presence_reset()
        self.stdout.write(f"Cleared {count} stale connection(s).")
