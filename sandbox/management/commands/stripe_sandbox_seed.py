"""`manage.py stripe_sandbox_seed`: the Stripe emulator's account, webhook endpoint and demo customers."""
from django.core.management.base import BaseCommand, CommandError

from sandbox.stripe_seed import stripe_sandbox_seed


class Command(BaseCommand):
    help = ("Seed the Stripe emulator at /sandbox/stripe/: an account with a secret key, its webhook endpoint and "
            "signing secret, and demo customers. With --tenant, the account takes that tenant's Stripe key and "
            "webhook secret and sends its events to the tenant's integration. Running it twice changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--webhook-url", default="", help="where the account's events are POSTed")
        parser.add_argument("--tenant", help="the slug of a tenant whose Stripe connection points at this sandbox")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000",
                            help="where this installation answers, for --tenant (default http://127.0.0.1:8000)")
        parser.add_argument("--no-demo", action="store_true", help="only the account")

    def handle(self, *args, webhook_url="", tenant=None, base_url="", no_demo=False, **options):
        seed = {}
        if tenant:
            from connectors.models import Integration

            integration = Integration.objects.select_related("partner_connection").filter(
                tenant__slug=tenant, kind="stripe"
            ).first()
            if integration is None:
                raise CommandError(f"Tenant {tenant!r} has no Stripe integration.")
            credentials = integration.partner_connection.credentials
            secrets = credentials.get("webhook_secrets") or [credentials.get("webhook_secret", "")]
            seed = {"secret_key": credentials["secret_key"], "webhook_secret": secrets[0]}
            webhook_url = webhook_url or f"{base_url.rstrip('/')}{integration.webhook_path}"
        account, created = stripe_sandbox_seed(webhook_url=webhook_url, demo=not no_demo, **seed)
        # Which key, never the key: the tenant's secrets stay out of the terminal.
        self.stdout.write(f"Stripe sandbox account {account.name} (secret key ending …{account.secret_key[-4:]})")
        if account.webhook_url:
            self.stdout.write(f"  webhooks → {account.webhook_url}")
        self.stdout.write(f"  {created} demo customer(s) created")
