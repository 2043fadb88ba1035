"""`manage.py process_inbox [SLUG]`: process stored webhook events now, in this process."""
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count
from django.utils import timezone

from connectors.models import InboundEvent, Tenant
from connectors.services import inbox_process


class Command(BaseCommand):
    help = "Process the inbound webhook events not yet processed (all tenants, or one), and print their statuses."

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
