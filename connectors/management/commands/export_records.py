"""`manage.py export_records SLUG [--format json|csv] [--output FILE]`: every synced record of a tenant."""
from django.core.management.base import BaseCommand, CommandError

from audit.exports import EXPORT_FORMATS, sync_records_export, sync_records_for_export
from connectors.models import Tenant


class Command(BaseCommand):
    help = (
        "Export one row per synced record of a tenant: integration, stream, source id, target id, status, amount, "
        "currency, reasons, updated at (UTC). CSV or JSON, to stdout or a file."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the tenant's slug")
        parser.add_argument("--format", choices=EXPORT_FORMATS, default="csv", dest="export_format")
        parser.add_argument("--output", help="write to this file instead of stdout")

    def handle(self, *args, slug, export_format="csv", output=None, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {slug!r}.")
        records = sync_records_for_export(tenant=tenant)
        if output is None:
            self.stdout.ending = ""
            sync_records_export(records, output=self.stdout, export_format=export_format)
            return
        try:
            with open(output, "w", encoding="utf-8", newline="") as file:
                written = sync_records_export(records, output=file, export_format=export_format)
        except OSError as error:
            raise CommandError(f"Cannot write {output}: {error.strerror or error}") from None
        self.stderr.write(f"Wrote {written} record(s) of {slug} to {output} ({export_format}).")
