"""`manage.py process_inbox [SLUG]`: process stored webhook events, then every record that is due, in this process."""
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count
from django.utils import timezone

from connectors.models import InboundEvent, Tenant
from connectors.pipeline import RUN_COUNTS, SweepRunning, records_drain
from connectors.services import inbox_process


class Command(BaseCommand):
    help = (
        "Process the inbound webhook events not yet processed (all tenants, or one), then advance every record that is "
        "due (retries, waits, interrupted writes), and print what became of them: with no worker running, this "
        "drains everything that can go now."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", nargs="?", help="only this tenant's events")

    def handle(self, *args, slug=None, **options):
        if slug and not Tenant.objects.filter(slug=slug).exists():
            raise CommandError(f"No tenant with slug {slug!r}.")
        started = timezone.now()
        processed = inbox_process(tenant_slug=slug)
        # The events this run finished are the ones stamped since it started.
        finished = InboundEvent.objects.filter(processed_at__gte=started)
        if slug:
            finished = finished.filter(integration__tenant__slug=slug)
        statuses = dict(finished.values_list("status").annotate(events=Count("id")).order_by("status"))
        breakdown = ", ".join(f"{status} {count}" for status, count in statuses.items())
        self.stdout.write(f"Processed {processed} inbound event(s)" + (f": {breakdown}" if breakdown else "."))
        for event in finished.filter(status=InboundEvent.Status.FAILED).select_related("integration__tenant"):
            self.stdout.write(
                f"  failed: {event.integration.tenant.slug} {event.integration.kind} event {event.event_id} "
                f"({event.event_type or 'no type'}), attempt {event.attempts}: {event.error}"
            )
        try:
            counts = records_drain(tenant_slug=slug)
        except SweepRunning:
            self.stdout.write("Due records: a worker's sweep is advancing them now.")
            return
        advanced = sum(counts.statuses.values())
        if not advanced:
            self.stdout.write("No records were due.")
            return
        outcome = ", ".join(f"{name} {getattr(counts, name)}" for name in RUN_COUNTS[1:] if name != "skipped")
        self.stdout.write(f"Advanced {advanced} due record(s): {outcome}")
