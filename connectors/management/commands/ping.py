"""`manage.py ping SLUG [KIND]`: check each connection's credentials against its system."""
from django.core.management.base import BaseCommand, CommandError

from connectors.models import Tenant
from connectors.provisioning import tenant_connections_check


class Command(BaseCommand):
    help = (
        "Check a tenant's connections (or just Visma and one kind): required credentials present, and accepted by "
        "the system where this version has a client for it. One line per connection; fails if any check failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the tenant's slug")
        parser.add_argument("kind", nargs="?", help="only the Visma connection and this system's")

    def handle(self, *args, slug, kind=None, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {slug!r}.")
        checks = tenant_connections_check(tenant, kind=kind)
        if not checks:
            raise CommandError(f"Tenant {slug} has no connections" + (f" for visma or {kind}." if kind else "."))
        if kind and kind not in {check.system for check in checks}:
            raise CommandError(f"Tenant {slug} has no {kind} connection.")
        for check in checks:
            self.stdout.write(str(check))
        failed = [check.system for check in checks if check.failed]
        if failed:
            raise CommandError(f"{len(failed)} of {len(checks)} connection check(s) failed: {', '.join(failed)}.")
