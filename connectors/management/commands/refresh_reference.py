"""manage.py refresh_reference SLUG [--full]: mirror a tenant's Visma reference data now and re-check its rules."""
from django.core.management.base import BaseCommand, CommandError

from connectors.errors import ConnectorError
from connectors.models import Tenant
from mappings.reference import reference_data_refresh


class Command(BaseCommand):
    help = ("Mirror a tenant's Visma GL accounts, dimension values, customers, suppliers and open customer invoices now "
            "(delta, or --full).")

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--full", action="store_true", help="read everything, and mark what Visma dropped")

    def handle(self, slug, full, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant {slug!r}.")
        try:
            refresh = reference_data_refresh(tenant, full=full)
        except ConnectorError as exc:
            raise CommandError(f"{slug}: Visma could not be read: {exc}") from exc
        self.stdout.write(
            f"{slug}: read {refresh.accounts} GL accounts, {refresh.dimension_values} dimension values, "
            f"{refresh.customers} customers, {refresh.suppliers} suppliers, {refresh.customer_invoices} customer "
            f"invoices; {refresh.deactivated} marked inactive; "
            f"{refresh.invalid_rules} mapping rule(s) invalid"
        )
