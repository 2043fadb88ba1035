"""`manage.py sync SLUG KIND [--stream NAME]`: run an integration's pollers once, now, in this process."""
import time

from django.core.management.base import BaseCommand, CommandError

from connectors import registry
from connectors.models import Integration, SyncRun
from connectors.pipeline import RUN_COUNTS, stream_poll

# Waiting (on another record, or the source) and retrying (a transient failure) are not failures.
COUNTS = RUN_COUNTS


def _summary(label: str, counts: dict[str, int]) -> str:
    return f"{label}: " + ", ".join(f"{name} {counts[name]}" for name in COUNTS)


class Command(BaseCommand):
    help = (
        "Poll one integration's streams once, inline (trigger: manual). Progress on stderr, a summary per stream "
        "and in total on stdout (fetched, posted, flagged, skipped, waiting, retrying, failed). Flagged and waiting "
        "records are not a failure; a stream that could not run is."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the tenant's slug")
        parser.add_argument("kind", help="the integration kind: " + ", ".join(k for k in registry.KINDS if k != "visma"))
        parser.add_argument("--stream", help="poll only this stream")

    def handle(self, *args, slug, kind, stream=None, **options):
        integration = Integration.objects.select_related("tenant").filter(tenant__slug=slug, kind=kind).first()
        if integration is None:
            raise CommandError(f"Tenant {slug!r} has no {kind} integration.")
        if not integration.tenant.is_active:
            raise CommandError(f"Tenant {slug} is inactive: nothing was polled.")
        if not integration.enabled:
            raise CommandError(f"The {kind} integration of {slug} is disabled: nothing was polled.")
        streams = list(registry.kind_spec(kind).streams)
        if stream:
            try:
                registry.stream_class(kind, stream)
            except KeyError as error:
                raise CommandError(error.args[0]) from None
            streams = [stream]
        if not streams:
            raise CommandError(f"{kind} has no streams in this version: nothing to poll.")
        total = dict.fromkeys(COUNTS, 0)
        failures = []
        for name in streams:
            self.stderr.write(f"{slug} {kind} {name}: polling…")
            started = time.monotonic()
            try:
                run = stream_poll(integration, name, trigger=SyncRun.Trigger.MANUAL, progress=self.stderr.write)
            except Exception as error:  # the run is recorded as failed by stream_poll; report and carry on
                failures.append(f"{name}: {type(error).__name__}: {error}")
                self.stderr.write(f"{slug} {kind} {name}: failed: {type(error).__name__}: {error}")
                continue
            counts = {count: getattr(run, count) for count in COUNTS}
            for count in COUNTS:
                total[count] += counts[count]
            self.stderr.write(f"{slug} {kind} {name}: done in {time.monotonic() - started:.1f}s "
                              f"(window {run.window_start:%Y-%m-%d %H:%M} – {run.window_end:%Y-%m-%d %H:%M} UTC)")
            # A window reaching past what the vendor has published is read to there: a success, said as such.
            note = run.published_note()
            self.stdout.write(_summary(name, counts) + (f"; {note}" if note else ""))
        self.stdout.write(_summary("total", total))
        if failures:
            raise CommandError("Could not complete: " + "; ".join(failures))
