"""Backfill: read a PayPal range of any length through the streams, one window of at most 31 days at a time."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from connectors.models import Integration, SyncRun
from connectors.pipeline import stream_for, stream_poll

# Transaction Search streams first, then invoices: a capture can wait for the invoice it pays, not the reverse.
BACKFILL_ORDER = ("invoices", "captures", "refunds", "reversals")


@dataclass
class BackfillProgress:
    """Where a backfill stands: the stream, the window just read, how many windows of how many, the run, and whether
    it is the stream's last (all windows read, or PayPal has published no further)."""

    stream: str
    window: int
    windows: int
    run: SyncRun
    last: bool = False


@dataclass
class BackfillResult:
    runs: dict[str, list[SyncRun]] = field(default_factory=dict)
    # Streams whose range reached past what PayPal has published: how far it had.
    published_until: dict[str, datetime] = field(default_factory=dict)

    def total(self, stream: str, count: str) -> int:
        return sum(getattr(run, count) for run in self.runs.get(stream, []))


def backfill_windows(start: datetime, end: datetime, max_window: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive windows no wider than `max_window`."""
    window_start = start
    while window_start < end:
        window_end = min(window_start + max_window, end)
        yield window_start, window_end
        window_start = window_end


def paypal_backfill(integration: Integration, *, start: datetime, end: datetime, streams: list[str] | None = None,
                    progress: Callable[[BackfillProgress], None] | None = None) -> BackfillResult:
    """Poll each stream over [start, end) in windows of its max_window (31 days for Transaction Search), up to what
    PayPal has published: a window it had published only in part is the stream's last (the range is read to there,
    and that is a success); cursors stay where they are (a backfill is not the schedule)."""
    result = BackfillResult()
    names = [name for name in BACKFILL_ORDER if streams is None or name in streams]
    for name in names:
        stream = stream_for(integration, name)
        stream_end = min(end, timezone.now() - stream.publication_delay)
        windows = list(backfill_windows(start, stream_end, stream.max_window))
        result.runs[name] = []
        for number, (window_start, window_end) in enumerate(windows, start=1):
            run = stream_poll(integration, name, trigger=SyncRun.Trigger.BACKFILL, start=window_start, end=window_end)
            result.runs[name].append(run)
            if run.published_until is not None:
                result.published_until[name] = run.published_until
            last = number == len(windows) or run.published_until is not None
            if progress:
                progress(BackfillProgress(stream=name, window=number, windows=len(windows), run=run, last=last))
            if last:
                break
    return result
