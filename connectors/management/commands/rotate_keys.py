"""`manage.py rotate_keys`: re-encrypt every stored secret with the newest key in FERNET_KEYS."""
from django.core.management.base import BaseCommand, CommandError

from connectors.keys import KeyRotationError, encryption_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted value (connection credentials, cached tokens...) with the first key of "
        "FERNET_KEYS, in one transaction. Afterwards the older keys can be removed from FERNET_KEYS."
    )

    def handle(self, *args, **options):
        try:
            result = encryption_keys_rotate()
        except KeyRotationError as error:
            raise CommandError(str(error)) from None
        detail = ", ".join(f"{label} {rows}" for label, rows in sorted(result.by_model.items()))
        self.stdout.write(
            f"Re-encrypted {result.rows} row(s) ({result.values} value(s)) with the newest key"
            + (f": {detail}." if detail else ".")
        )
