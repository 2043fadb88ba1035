"""`manage.py square_sandbox_seed`: the Square emulator's seller, locations, webhook subscription and demo data."""
from django.core.management.base import BaseCommand, CommandError

from sandbox.square_seed import square_sandbox_seed


class Command(BaseCommand):
    help = ("Seed the Square emulator at /sandbox/square/: the seller Nordlys Friluft with four locations, a personal "
            "access token, a webhook subscription and demo payments, a refund, an invoice and vendors. With --tenant, "
            "the seller takes that tenant's Square access token and signature key and sends its events to the "
            "integration's notification URL. Running it twice changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--notification-url", default="", help="where the seller's events are POSTed")
        parser.add_argument("--tenant", help="the slug of a tenant whose Square connection points at this sandbox")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000",
                            help="where this installation answers, for --tenant (default http://127.0.0.1:8000)")
        parser.add_argument("--no-demo", action="store_true", help="only the seller and its locations")

    def handle(self, *args, notification_url="", tenant=None, base_url="", no_demo=False, **options):
        seed = {}
        if tenant:
            from connectors.models import Integration

            integration = Integration.objects.select_related("partner_connection").filter(
                tenant__slug=tenant, kind="square").first()
            if integration is None:
                raise CommandError(f"Tenant {tenant!r} has no Square integration.")
            credentials = integration.partner_connection.credentials
            keys = credentials.get("webhook_signature_keys") or [credentials.get("webhook_signature_key", "")]
            seed = {"access_token": credentials["access_token"], "signature_key": keys[0]}
            notification_url = (notification_url or (integration.settings or {}).get("webhook_notification_url")
                                or f"{base_url.rstrip('/')}{integration.webhook_path}")
        merchant, created = square_sandbox_seed(notification_url=notification_url, demo=not no_demo, **seed)
        # Which token, never the token: the tenant's secrets stay out of the terminal.
        self.stdout.write(f"Square sandbox seller {merchant.name} ({merchant.merchant_id}), main location "
                          f"{merchant.main_location_id}")
        if merchant.notification_url:
            self.stdout.write(f"  webhooks → {merchant.notification_url}")
        self.stdout.write(f"  {created} demo object(s) created")
