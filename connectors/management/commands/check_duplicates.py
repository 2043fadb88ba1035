"""`manage.py check_duplicates SLUG [--hours N]`: look for documents in Visma that share a marker, now."""
from django.core.management.base import BaseCommand, CommandError

from connectors.models import Tenant
from connectors.visma.duplicates import visma_duplicates_check


class Command(BaseCommand):
    help = (
        "Read what changed in the tenant's Visma over the last hours (journals, customer invoices and payments, "
        "supplier invoices and payments), and show each record whose marker two documents carry as a possible "
        "duplicate in the review queue. Also runs every 4 hours."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the tenant's slug")
        parser.add_argument("--hours", type=int, help="how far back to read (default VISMA_DUPLICATE_CHECK_HOURS)")

    def handle(self, *args, slug, hours=None, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {slug!r}.")
        if hours is not None and not 1 <= hours <= 24 * 93:
            raise CommandError("--hours must be from 1 to 2232 (93 days)")
        shown = visma_duplicates_check(tenant, hours=hours)
        if not shown:
            self.stdout.write(f"{slug}: no new possible duplicates in Visma.")
            return
        for record in shown:
            self.stdout.write(f"{slug}: {record.stream} {record.source_id} (marker {record.posting_marker}, "
                              f"{record.target_kind} {record.target_id}) also in {', '.join(record.duplicate_targets)}")
