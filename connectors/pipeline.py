"""The engine every integration runs on: read → record → transform → map → validate → post, crash-safe."""
from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as record_services
from audit.models import RecordStatus as S
from audit.models import SyncRecord
from mappings.documents import Posting, posting_apply_correction, posting_marker
from mappings.money import MoneyError
from mappings.services import LiveCheck, MappingOutcome, posting_map, posting_validate

from . import registry
from .errors import PermanentError, TransientError, WaitFor
from .models import InboundEvent, Integration, SyncCursor, SyncRun

log = logging.getLogger(__name__)


class SourceDataError(ValueError):
    """The source object cannot become a posting as it stands (a missing field, a bad amount...)."""


@dataclass(frozen=True)
class SourceObject:
    """One object read from the source system, as the pipeline keeps it."""

    source_id: str
    payload: dict
    updated_at: datetime | None = None
    amount: Decimal | None = None
    currency: str = ""


class Stream(abc.ABC):
    """One kind of object moving one way (PayPal captures → Visma journals). Vendors subclass it."""

    name: str
    kind: str
    target_kind: str = "journal"
    # Poller windows: re-read `overlap` before the cursor, never more than `max_window` at once,
    # never past `now - publication_delay` (vendors publish late).
    overlap: timedelta = timedelta(minutes=10)
    max_window: timedelta = timedelta(days=31)
    publication_delay: timedelta = timedelta(0)
    initial_lookback: timedelta = timedelta(days=7)
    default_poll_minutes: int = 15

    def __init__(self, integration: Integration):
        self.integration = integration
        self.tenant = integration.tenant

    def marker(self, source_id: str) -> str:
        """The marker of the posting this source object becomes (tenant, integration kind, stream, source id):
        15 characters, so every Visma reference field keeps it whole."""
        return posting_marker(tenant_id=self.tenant.pk, system=self.integration.kind, stream=self.name,
                              source_id=source_id)

    @abc.abstractmethod
    def read_window(self, start: datetime, end: datetime) -> Iterable[SourceObject]:
        """Source objects changed in [start, end), streamed page by page."""

    @abc.abstractmethod
    def read_one(self, source_id: str) -> SourceObject | None:
        """The object as the source has it now (webhooks are triggers, not the truth)."""

    @abc.abstractmethod
    def transform(self, source: SourceObject) -> Posting:
        """The posting the object becomes, lines by role; raise SourceDataError, WaitFor or TransientError."""

    @abc.abstractmethod
    def find_posted(self, posting: Posting, record: SyncRecord) -> str | None:
        """The target id of a document already written with this posting's marker, if any.

        Called only when a write may have landed; `record` tells since when (its audit trail, posting_started_at).
        """

    @abc.abstractmethod
    def write(self, posting: Posting, record: SyncRecord) -> str:
        """Write the posting to the target; return the target's id."""

    def live_check(self) -> LiveCheck | None:
        """How to re-check an unknown reference value live (the Visma side supplies one)."""
        return None

    def map(self, posting: Posting) -> MappingOutcome:
        """GL accounts and dimensions by the tenant's mapping rules; a stream into a partner system overrides it."""
        return posting_map(tenant=self.tenant, system=self.integration.kind, posting=posting)

    def problems(self, posting: Posting) -> list[str]:
        """What stops the posting from being written; by default checked against Visma's reference data."""
        return posting_validate(tenant=self.tenant, posting=posting, live_check=self.live_check())


def stream_for(integration: Integration, stream_name: str) -> Stream:
    return registry.stream_class(integration.kind, stream_name)(integration)


@dataclass
class RunCounts:
    fetched: int = 0
    posted: int = 0
    flagged: int = 0
    skipped: int = 0
    failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def count(self, record: SyncRecord, *, already_settled: bool) -> None:
        if already_settled:
            self.skipped += 1
        elif record.status == S.POSTED:
            self.posted += 1
        elif record.status == S.FLAGGED:
            self.flagged += 1
        elif record.status in (S.FAILED, S.RETRYING):
            self.failed += 1
        self.statuses[record.status] = self.statuses.get(record.status, 0) + 1


SETTLED = frozenset({S.POSTED, S.REJECTED, S.FLAGGED, S.APPROVED, S.POSTING})


# --- one record ---------------------------------------------------------------------------------------------


def record_ingest(integration: Integration, stream_name: str, source: SourceObject) -> tuple[SyncRecord, bool]:
    return record_services.record_upsert(
        integration=integration, stream=stream_name, source_id=source.source_id, payload=source.payload,
        source_updated_at=source.updated_at, amount=source.amount, currency=source.currency,
    )


def record_advance(record: SyncRecord, *, stream: Stream | None = None) -> SyncRecord:
    """Take a record as far as it can go now: posted, flagged for a person, or scheduled for a retry."""
    record.refresh_from_db()
    if record.status == S.RETRYING and record.next_attempt_at and record.next_attempt_at > timezone.now():
        # The backoff holds for pollers and webhooks too; the sweep takes it when it is due.
        return record
    stream = stream or stream_for(record.integration, record.stream)
    try:
        if record.status == S.RECEIVED or (record.status == S.RETRYING and not record.proposed_posting):
            record = _prepare(record, stream)
            if record.status == S.READY:
                record = _post(record, stream)
        elif record.status in (S.READY, S.APPROVED, S.RETRYING):
            record = _post(record, stream)
        elif record.status == S.POSTING and _lease_expired(record):
            record = _recover_interrupted_write(record, stream)
    except record_services.TransitionRefused as refused:
        # Another worker moved the record first; it carries on from there.
        log.info("record %s: %s", record.pk, refused)
        record.refresh_from_db()
    return record


def _prepare(record: SyncRecord, stream: Stream) -> SyncRecord:
    """transform → map → validate: `ready` with the posting to write, or `flagged` with the reasons."""
    source = SourceObject(
        source_id=record.source_id, payload=record.source_payload, updated_at=record.source_updated_at,
        amount=record.amount, currency=record.currency,
    )
    try:
        posting = stream.transform(source)
    except WaitFor as waiting:
        # Waiting on another record is not this record's failure: it is looked at again, without spending attempts.
        return record_services.record_schedule_retry(
            record, error=f"waiting: {waiting}",
            not_before=timezone.now() + timedelta(seconds=settings.SYNC_WAIT_SECONDS),
        )
    except TransientError as exc:
        return _retry_later(record, exc, error=str(exc))
    except (SourceDataError, MoneyError, PermanentError) as exc:
        return record_services.record_flag(record, reasons=[f"{record.stream} {record.source_id}: {exc}"])
    except Exception as exc:
        # A payload the stream did not expect must not stall its window or the sweep: a person sees it, and
        # replays it once the stream is fixed.
        log.exception("record %s: transform failed", record.pk)
        return record_services.record_flag(record, reasons=[
            f"{record.stream} {record.source_id}: could not be read as a posting: {type(exc).__name__}: {exc}"
        ])
    outcome = stream.map(posting)
    if outcome.rule is None and outcome.problems:
        return record_services.record_flag(
            record, reasons=outcome.problems, proposed_posting=posting.to_json(), posting_marker=posting.marker
        )
    try:
        problems = stream.problems(posting)
    except TransientError as exc:
        return _retry_later(record, exc, error=f"could not check reference data: {exc}")
    # The rule's own gaps (no fee account...) say more than the validator's "line has no GL account".
    problems = list(dict.fromkeys([*outcome.problems, *problems]))
    if problems:
        return record_services.record_flag(
            record, reasons=problems, proposed_posting=posting.to_json(), posting_marker=posting.marker
        )
    return record_services.record_mark_ready(record, proposed_posting=posting.to_json(), posting_marker=posting.marker)


def _post(record: SyncRecord, stream: Stream) -> SyncRecord:
    """The crash-safe write: claim (`posting`, marker stored) → look up by marker if a write may have landed →
    write → `posted`. A crash anywhere leaves the record in `posting`, where recovery looks before writing."""
    posting = posting_apply_correction(Posting.from_json(record.proposed_posting), record.corrected_posting)
    try:
        problems = stream.problems(posting)
    except TransientError as exc:
        return _retry_later(record, exc, error=f"could not check reference data: {exc}")
    if problems:
        # Nothing invalid is ever sent: Visma has no drafts.
        return record_services.record_flag(record, reasons=problems)
    may_have_landed = record.write_attempted
    record = record_services.record_start_posting(record)
    return _write(record, stream, posting, look_up_first=may_have_landed)


def _write(record: SyncRecord, stream: Stream, posting: Posting, *, look_up_first: bool) -> SyncRecord:
    try:
        target_id = stream.find_posted(posting, record) if look_up_first else None
        how = f"found already posted by marker {posting.marker}" if target_id else "posted"
        if not target_id:
            target_id = stream.write(posting, record)
    except TransientError as exc:
        return _retry_later(record, exc, error=str(exc))
    except PermanentError as exc:
        return record_services.record_flag(record, reasons=[f"{stream.target_kind} refused by the target: "
                                                            f"{exc.system_message}"])
    return record_services.record_mark_posted(record, target_id=target_id, target_kind=stream.target_kind, reason=how)


def _retry_later(record: SyncRecord, exc: TransientError, *, error: str) -> SyncRecord:
    # A system that said when it takes calls again is waited for without spending one of the record's attempts.
    return record_services.record_schedule_retry(record, error=error, not_before=getattr(exc, "retry_at", None))


def _lease_expired(record: SyncRecord) -> bool:
    lease = timedelta(seconds=settings.SYNC_POSTING_LEASE_SECONDS)
    return record.posting_started_at is None or record.posting_started_at <= timezone.now() - lease


def _recover_interrupted_write(record: SyncRecord, stream: Stream) -> SyncRecord:
    """A record left in `posting` (a worker died mid-write): posted if the target has its marker, else retried."""
    posting = posting_apply_correction(Posting.from_json(record.proposed_posting), record.corrected_posting)
    try:
        target_id = stream.find_posted(posting, record)
    except TransientError as exc:
        return _retry_later(record, exc, error=f"recovery lookup failed: {exc}")
    except PermanentError as exc:
        # Whether the interrupted write landed cannot be told: a person checks the target before anything is sent.
        return record_services.record_flag(record, reasons=[
            f"an interrupted write could not be looked up by marker {posting.marker}: {exc.system_message}; "
            "check the target for it, then approve or reject"
        ])
    if target_id:
        return record_services.record_mark_posted(
            record, target_id=target_id, target_kind=stream.target_kind,
            reason=f"interrupted write found in target by marker {posting.marker}",
        )
    record = record_services.record_transition(
        record, S.RETRYING, reason=f"interrupted write not found in target by marker {posting.marker}; writing again",
        expected={S.POSTING}, expected_claim=record.posting_started_at, next_attempt_at=timezone.now(),
    )
    return _post(record, stream)


# --- many records -------------------------------------------------------------------------------------------


def stream_poll(integration: Integration, stream_name: str, *, trigger: str = SyncRun.Trigger.SCHEDULE,
                start: datetime | None = None, end: datetime | None = None,
                progress: Callable[[str], None] | None = None) -> SyncRun:
    """Read one window of a stream, store and advance every object, then move the cursor.

    Without `start`/`end` the window runs from the cursor (less the overlap) to now (less the vendor's
    publication delay), no wider than the vendor allows; the cursor moves only when the whole window is stored.
    """
    stream = stream_for(integration, stream_name)
    now = timezone.now()
    cursor, _ = SyncCursor.objects.get_or_create(integration=integration, stream=stream_name)
    moves_cursor = start is None and end is None
    if start is None:
        start = (cursor.position or now - stream.initial_lookback) - stream.overlap
    if end is None:
        end = now - stream.publication_delay
    end = min(end, start + stream.max_window)
    run = SyncRun.objects.create(
        integration=integration, stream=stream_name, trigger=trigger, window_start=start, window_end=end
    )
    counts = RunCounts()
    try:
        for source in stream.read_window(start, end):
            counts.fetched += 1
            record, created = record_ingest(integration, stream_name, source)
            already_settled = not created and record.status in SETTLED
            if not already_settled:
                record = record_advance(record, stream=stream)
            counts.count(record, already_settled=already_settled)
            if progress and counts.fetched % 50 == 0:
                progress(f"{stream_name}: {counts.fetched} read, {counts.posted} posted, {counts.flagged} flagged")
    except Exception as exc:
        _finish_run(run, counts, status=SyncRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        log.exception("poll of %s %s failed", integration, stream_name)
        raise
    if moves_cursor:
        SyncCursor.objects.filter(pk=cursor.pk).update(position=end, updated_at=timezone.now())
    return _finish_run(run, counts, status=SyncRun.Status.COMPLETED)


def _finish_run(run: SyncRun, counts: RunCounts, *, status: str, error: str = "") -> SyncRun:
    run.status = status
    run.error = error
    run.finished_at = timezone.now()
    for name in ("fetched", "posted", "flagged", "skipped", "failed"):
        setattr(run, name, getattr(counts, name))
    run.save()
    return run


def records_advance_due(*, limit: int = 500) -> int:
    """The sweep: retries that are due, records a crash left behind, writes whose worker died. Returns a count."""
    now = timezone.now()
    idle = now - timedelta(minutes=2)
    lease = now - timedelta(seconds=settings.SYNC_POSTING_LEASE_SECONDS)
    due = SyncRecord.objects.filter(
        Q(status=S.RETRYING, next_attempt_at__lte=now)
        | Q(status__in=[S.RECEIVED, S.READY, S.APPROVED], updated_at__lte=idle)
        | Q(status=S.POSTING, posting_started_at__lte=lease)
    ).select_related("integration__tenant").order_by("updated_at")[:limit]
    advanced = 0
    for record in due:
        if not (record.integration.enabled and record.integration.tenant.is_active):
            continue
        try:
            record_advance(record)
        except Exception:
            # One record's failure (a stream gone from the registry, a bug) must not stall the whole sweep.
            log.exception("sweep could not advance record %s", record.pk)
            continue
        advanced += 1
    return advanced


# --- webhooks -------------------------------------------------------------------------------------------------


def inbound_event_process(event: InboundEvent) -> InboundEvent:
    """Turn a stored webhook into records: the kind's verifier says which objects it touches; each is re-read."""
    with transaction.atomic():
        event = InboundEvent.objects.select_for_update().select_related("integration__tenant").get(pk=event.pk)
        if event.status in (InboundEvent.Status.PROCESSED, InboundEvent.Status.IGNORED):
            return event
        InboundEvent.objects.filter(pk=event.pk).update(attempts=event.attempts + 1)
    integration = event.integration
    verifier = registry.kind_spec(event.kind or integration.kind).verifier
    try:
        if verifier and verifier.event_apply(event):
            return _event_done(event, InboundEvent.Status.PROCESSED)
        touched = verifier.objects_touched(event) if verifier else []
        if not touched:
            return _event_done(event, InboundEvent.Status.IGNORED)
        for stream_name, source_id in touched:
            stream = stream_for(integration, stream_name)
            source = stream.read_one(source_id)
            if source is None:
                continue
            record, _ = record_ingest(integration, stream_name, source)
            record_advance(record, stream=stream)
    except Exception as exc:
        log.exception("inbound event %s failed", event.pk)
        return _event_done(event, InboundEvent.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
    return _event_done(event, InboundEvent.Status.PROCESSED)


def _event_done(event: InboundEvent, status: str, *, error: str = "") -> InboundEvent:
    event.status, event.error, event.processed_at = status, error, timezone.now()
    event.save(update_fields=["status", "error", "processed_at"])
    return event
