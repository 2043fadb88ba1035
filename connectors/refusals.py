"""Refused webhook deliveries, counted per integration, reason and ten-minute window: a flood costs no row per request.

The first refusal of a window writes its count row and one audit entry at once, so a person sees it within the
request. Later refusals are added up in this process and written at most every WEBHOOK_REFUSAL_FLUSH_SECONDS (by the
next refusal or a timer), so 100,000 bad requests cost a handful of writes, not 100,000 commits holding SQLite's
single writer. Counts not yet written when a process is killed (not stopped) are lost: at most that many seconds.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models import F
from django.utils import timezone

from audit.services import webhook_rejection_audit

from .models import REFUSAL_WINDOW_SECONDS, Integration, WebhookRefusal

log = logging.getLogger(__name__)

# A reason can carry what the sender put in a header: kept short.
DETAIL_MAX_CHARS = 500


@dataclass
class _Tally:
    integration: Integration
    deliveries: int
    detail: str
    remote_addr: str
    first_at: datetime
    last_at: datetime
    audit_details: dict


_lock = threading.Lock()
_pending: dict[tuple, _Tally] = {}
# Windows this process has already written a row for: later refusals in them wait for the next flush.
_written: set[tuple] = set()
_last_flush = 0.0
_timer: threading.Timer | None = None


def refusal_window_start(moment: datetime) -> datetime:
    seconds = int(moment.timestamp()) // REFUSAL_WINDOW_SECONDS * REFUSAL_WINDOW_SECONDS
    return datetime.fromtimestamp(seconds, tz=UTC)


def webhook_refusal_count(*, integration: Integration, reason: str, detail: str, remote_addr: str = "",
                          audit_details: dict | None = None) -> None:
    """Count one refused delivery; never raises (a refusal must not become a server error)."""
    now = timezone.now()
    key = (integration.pk, reason, refusal_window_start(now))
    detail = detail[:DETAIL_MAX_CHARS]
    with _lock:
        tally = _pending.get(key)
        if tally is None:
            _pending[key] = _Tally(integration, 1, detail, remote_addr[:64], now, now, audit_details or {})
        else:
            tally.deliveries, tally.detail, tally.remote_addr, tally.last_at = (
                tally.deliveries + 1, detail, remote_addr[:64], now)
        first = key not in _written
        interval = settings.WEBHOOK_REFUSAL_FLUSH_SECONDS
        due = first or interval <= 0 or time.monotonic() - _last_flush >= interval
    if first:
        log.warning("webhook for %s refused: %s", integration.pk, detail)
    if due:
        webhook_refusals_flush()
    else:
        _timer_ensure(interval)


def webhook_refusals_flush() -> int:
    """Write every count this process holds; returns how many rows it touched. Never raises."""
    global _last_flush, _timer
    with _lock:
        taken = dict(_pending)
        _pending.clear()
        _last_flush = time.monotonic()
        if _timer is not None:
            _timer.cancel()
            _timer = None
        newest = max((key[2] for key in taken), default=None)
        if newest is not None:
            # Only the newest window and the one before it still get refusals: forget the others.
            for key in [key for key in _written if (newest - key[2]).total_seconds() > REFUSAL_WINDOW_SECONDS]:
                _written.discard(key)
        _written.update(taken)
    for key, tally in taken.items():
        try:
            _refusal_write(key, tally)
        except Exception:  # the database is down or locked too long: the refusal still gets its 4xx
            log.exception("could not count %s refused webhook deliveries for %s", tally.deliveries, key[0])
    return len(taken)


def _refusal_write(key: tuple, tally: _Tally) -> None:
    integration_id, reason, window_start = key
    row = WebhookRefusal.objects.filter(integration_id=integration_id, reason=reason, window_start=window_start)
    changes = dict(deliveries=F("deliveries") + tally.deliveries, last_detail=tally.detail,
                   last_remote_addr=tally.remote_addr, last_at=tally.last_at)
    with transaction.atomic():
        if row.update(**changes):
            return
        try:
            with transaction.atomic():
                WebhookRefusal.objects.create(
                    integration_id=integration_id, reason=reason, window_start=window_start,
                    deliveries=tally.deliveries, last_detail=tally.detail, last_remote_addr=tally.remote_addr,
                    first_at=tally.first_at, last_at=tally.last_at,
                )
        except IntegrityError:  # another process opened the window meanwhile
            row.update(**changes)
            return
        webhook_rejection_audit(
            integration=tally.integration, reason=tally.detail,
            details={**tally.audit_details, "refusal": reason, "window_start": window_start.isoformat(),
                     "counted_in": "webhook refusals (one row per integration, reason and 10 minutes)"},
        )


def _timer_ensure(interval: float) -> None:
    """Counts left when no further refusal comes are written by a timer, not kept until the process ends."""
    global _timer
    with _lock:
        if _timer is not None or not _pending:
            return
        _timer = threading.Timer(interval, _flush_from_timer)
        _timer.daemon = True
        _timer.start()


def _flush_from_timer() -> None:
    try:
        webhook_refusals_flush()
    finally:
        connections.close_all()  # this thread's own connection


atexit.register(webhook_refusals_flush)
