"""`manage.py demo_report SLUG`: what the demo tenant's records became, by stream; fails when nothing was posted."""
from django.core.management.base import BaseCommand, CommandError

from audit.models import RecordStatus
from audit.selectors import COUNT_ORDER, StreamStatusCount, tenant_records_count_by_stream
from connectors.models import Tenant


def _counts(rows: list[StreamStatusCount]) -> str:
    """`posted 4, flagged 1`, in the record's life order."""
    return ", ".join(
        f"{status} {total}" for status in COUNT_ORDER
        if (total := sum(row.count for row in rows if row.status == status))
    )


class Command(BaseCommand):
    help = (
        "Print how many of a tenant's records each stream has posted, flagged, ... (scripts/start shows it once the "
        "demo has loaded). Fails when the tenant has no posted record: the demo did not load."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the tenant's slug")

    def handle(self, *args, slug, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {slug!r}.")
        rows = tenant_records_count_by_stream(tenant)
        if not any(row.status == RecordStatus.POSTED for row in rows):
            found = _counts(rows) or "no record at all"
            raise CommandError(f"{slug} has no posted record ({found}): the demo did not load.")
        self.stdout.write(f"{slug}'s records, by stream:")
        for kind, stream in dict.fromkeys((row.kind, row.stream) for row in rows):
            in_stream = [row for row in rows if (row.kind, row.stream) == (kind, stream)]
            self.stdout.write(f"  {kind} {stream}: {_counts(in_stream)}")
        self.stdout.write(f"  total: {_counts(rows)}")
