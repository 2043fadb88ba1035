"""`manage.py paypal_sandbox_seed`: the PayPal emulator's app, signing certificate, webhook subscription, demo data."""
from django.core.management.base import BaseCommand, CommandError

from sandbox.paypal_seed import paypal_sandbox_seed, paypal_sandbox_seed_for_tenant


class Command(BaseCommand):
    help = (
        "Seed the PayPal emulator at /sandbox/paypal/: a REST app, a self-signed signing certificate, and demo "
        "captures with fees, partial refunds, an invoice and a payer with no Visma customer. With --tenant, the app "
        "takes that tenant's PayPal credentials, webhooks go to its integration and its demo payers are mapped. "
        "Running it twice changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000",
                            help="where this installation answers (default http://127.0.0.1:8000)")
        parser.add_argument("--tenant", help="the slug of a tenant whose PayPal connection points at this sandbox")
        parser.add_argument("--no-demo", action="store_true", help="only the app and the certificate")

    def handle(self, *args, base_url, tenant=None, no_demo=False, **options):
        origin = base_url.rstrip("/")
        if tenant:
            from connectors.models import Integration

            if not Integration.objects.filter(tenant__slug=tenant, kind="paypal").exists():
                raise CommandError(f"Tenant {tenant!r} has no PayPal integration.")
            seed = paypal_sandbox_seed_for_tenant(tenant, origin=origin, demo=not no_demo)
        else:
            seed = paypal_sandbox_seed(base_url=f"{origin}/sandbox/paypal", demo=not no_demo)
        self.stdout.write(f"PayPal sandbox at {seed.app.base_url}: client id {seed.app.client_id}, "
                          f"signing certificate {seed.cert_id}")
        if seed.webhook_url:
            self.stdout.write(f"  webhooks ({seed.webhook_id}) → {seed.webhook_url}")
        self.stdout.write("  demo data created" if seed.demo_created else "  demo data already there (or skipped)")
