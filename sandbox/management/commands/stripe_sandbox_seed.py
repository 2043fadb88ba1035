"""`manage.py stripe_sandbox_seed`: the Stripe emulator's account, webhook endpoint and demo customers."""
from django.core.management.base import BaseCommand

from sandbox.stripe_seed import stripe_sandbox_seed


class Command(BaseCommand):
    help = ("Seed the Stripe emulator at /sandbox/stripe/: an account with a secret key, its webhook endpoint and "
            "signing secret, and demo customers. Running it twice changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--webhook-url", default="", help="where the account's events are POSTed")
        parser.add_argument("--no-demo", action="store_true", help="only the account")

    def handle(self, *args, webhook_url="", no_demo=False, **options):
        account, created = stripe_sandbox_seed(webhook_url=webhook_url, demo=not no_demo)
        self.stdout.write(f"Stripe sandbox: secret key {account.secret_key}, webhook secret {account.webhook_secret}")
        if account.webhook_url:
            self.stdout.write(f"  webhooks → {account.webhook_url}")
        self.stdout.write(f"  {created} demo customer(s) created")
