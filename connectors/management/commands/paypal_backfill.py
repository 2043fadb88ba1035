"""`manage.py paypal_backfill SLUG --from DATE --to DATE`: read a PayPal range of any length in 31-day windows."""
from datetime import UTC, date, datetime, time, timedelta

from django.core.management.base import BaseCommand, CommandError

from connectors.models import Integration
from connectors.paypal.backfill import BACKFILL_ORDER, BackfillProgress, paypal_backfill
from connectors.pipeline import RUN_COUNTS

# Waiting (on another record, or the source) and retrying (a transient failure) are not failures.
COUNTS = RUN_COUNTS
BAR_WIDTH = 30


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = (
        "Backfill a tenant's PayPal integration over a date range of any length (inclusive, UTC): each stream is read "
        "in windows of at most 31 days (Transaction Search's limit), never past what PayPal has published; a window "
        "PayPal finds too large is split. Progress on stderr, a summary per stream on stdout; cursors are untouched."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the tenant's slug")
        parser.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="date_to", required=True, help="last day, YYYY-MM-DD")
        parser.add_argument("--stream", action="append", choices=BACKFILL_ORDER,
                            help="only this stream (repeatable); default: all")

    def handle(self, *args, slug, date_from, date_to, stream=None, **options):
        first, last = _day(date_from), _day(date_to)
        if last < first:
            raise CommandError(f"--to {last} is before --from {first}")
        integration = Integration.objects.select_related("tenant").filter(tenant__slug=slug, kind="paypal").first()
        if integration is None:
            raise CommandError(f"Tenant {slug!r} has no PayPal integration.")
        if not (integration.enabled and integration.tenant.is_active):
            raise CommandError(f"The PayPal integration of {slug} is disabled or its tenant inactive: nothing read.")
        start = datetime.combine(first, time.min, tzinfo=UTC)
        end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
        self.last: BackfillProgress | None = None
        try:
            result = paypal_backfill(integration, start=start, end=end, streams=stream, progress=self._progress)
        except Exception as error:  # the failed window is recorded as a failed SyncRun; say where to resume
            after = (f" after {self.last.stream} {self.last.run.window_end:%Y-%m-%d %H:%M} UTC" if self.last
                     else "")
            raise CommandError(f"Backfill stopped{after}: {type(error).__name__}: {error}") from error
        for name, runs in result.runs.items():
            # A range reaching past what PayPal has published is read to there: a success, said as such.
            note = runs[-1].published_note() if runs else ""
            self.stdout.write(f"{name}: {len(runs)} window(s), "
                              + ", ".join(f"{count} {result.total(name, count)}" for count in COUNTS)
                              + (f"; {note}" if note else ""))

    def _progress(self, step: BackfillProgress) -> None:
        self.last = step
        done = round(BAR_WIDTH * step.window / step.windows) if step.windows else BAR_WIDTH
        run = step.run
        self.stderr.write(
            f"\r{step.stream:<9} [{'#' * done}{'.' * (BAR_WIDTH - done)}] {step.window}/{step.windows} "
            f"{run.window_start:%Y-%m-%d} – {run.window_end:%Y-%m-%d}: fetched {run.fetched}, posted {run.posted}, "
            f"flagged {run.flagged}" + (f"; {run.published_note()}" if run.published_until else ""),
            ending="\n" if step.last else "",
        )
        self.stderr.flush()
