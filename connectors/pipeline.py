"""The engine every integration runs on: read → record → transform → map → validate → post, crash-safe."""
from __future__ import annotations

import abc
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit import services as record_services
from audit.models import RecordStatus as S
from audit.models import SyncRecord
from mappings.documents import Posting, posting_apply_correction, posting_marker
from mappings.money import MoneyError
from mappings.services import (
    LiveCheck,
    MappingOutcome,
    ReferenceMirror,
    mapping_rules_active,
    posting_map,
    posting_validate,
)

from . import registry
from .errors import PermanentError, RetryLater, TransientError, WaitFor
from .models import InboundEvent, Integration, SyncCursor, SyncRun, WorkLease

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


@dataclass(frozen=True)
class Written:
    """What a stream's write put into the target (or found there already): the document's kind, its id, the marker
    it carries."""

    kind: str
    target_id: str
    marker: str
    # The target's own status of it (Visma: Hold, Balanced, Open, Closed, Posted...), where the target has one.
    status: str = ""

    @classmethod
    def of(cls, posting: Posting, target_id: str, *, kind: str | None = None, status: str = "") -> Written:
        return cls(kind=kind or posting.document, target_id=str(target_id), marker=posting.marker, status=status)


class Stream(abc.ABC):
    """One kind of object moving one way (PayPal captures → Visma journals). Vendors subclass it."""

    name: str
    kind: str
    target_kind: str = "journal"
    # Poller windows: re-read `overlap` before the cursor, never more than `max_window` at once,
    # never past `now - publication_delay` (a vendor that publishes late without saying how far: see published_until).
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

    def published_until(self) -> datetime | None:
        """After read_window: how far the source says it had published what the window asked for (None: all of it).

        A vendor that publishes late and says so (PayPal's last_refreshed_datetime) reports it here; the poll ends
        successfully with the cursor there, and the next poll reads on from it.
        """
        return None

    @abc.abstractmethod
    def read_one(self, source_id: str) -> SourceObject | None:
        """The object as the source has it now (webhooks are triggers, not the truth)."""

    @abc.abstractmethod
    def transform(self, source: SourceObject) -> Posting:
        """The posting the object becomes, lines by role; raise SourceDataError, WaitFor or TransientError."""

    @abc.abstractmethod
    def find_posted(self, posting: Posting, record: SyncRecord) -> Written | None:
        """The document already written with this posting's marker, if any.

        Called only when a write may have landed; `record` tells since when (its audit trail, posting_started_at).
        """

    @abc.abstractmethod
    def write(self, posting: Posting, record: SyncRecord) -> Written:
        """Write the posting to the target; return what was written."""

    def live_check(self) -> LiveCheck | None:
        """How to re-check an unknown reference value live (the Visma side supplies one)."""
        return None

    @cached_property
    def mirror(self) -> ReferenceMirror:
        """The tenant's Visma reference data as this stream's records need it, each value read once."""
        return ReferenceMirror(self.tenant)

    @cached_property
    def mapping_rules(self) -> list:
        """The tenant's active rules for this system, read once for the records this stream advances."""
        return mapping_rules_active(tenant=self.tenant, system=self.integration.kind)

    def map(self, posting: Posting) -> MappingOutcome:
        """GL accounts and dimensions by the tenant's mapping rules; a stream into a partner system overrides it."""
        return posting_map(tenant=self.tenant, system=self.integration.kind, posting=posting,
                           rules=self.mapping_rules)

    def problems(self, posting: Posting) -> list[str]:
        """What stops the posting from being written; by default checked against Visma's reference data."""
        return posting_validate(tenant=self.tenant, posting=posting, live_check=self.live_check(),
                                mirror=self.mirror)


def stream_for(integration: Integration, stream_name: str) -> Stream:
    return registry.stream_class(integration.kind, stream_name)(integration)


@dataclass
class RunCounts:
    fetched: int = 0
    posted: int = 0
    flagged: int = 0
    skipped: int = 0
    waiting: int = 0
    retrying: int = 0
    failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def count(self, record: SyncRecord, *, already_settled: bool) -> None:
        if already_settled:
            self.skipped += 1
        elif record.status == S.POSTED:
            self.posted += 1
        elif record.status == S.FLAGGED:
            self.flagged += 1
        elif record.status == S.WAITING:
            self.waiting += 1
        elif record.status == S.RETRYING:
            self.retrying += 1
        elif record.status == S.FAILED:
            self.failed += 1
        self.statuses[record.status] = self.statuses.get(record.status, 0) + 1


SETTLED = frozenset({S.POSTED, S.REJECTED, S.FLAGGED, S.APPROVED, S.POSTING})
# Records a fresh read of their source leaves as they are (record_upsert refreshes none of them).
KEPT_AS_DECIDED = frozenset({S.POSTED, S.REJECTED, S.APPROVED, S.POSTING})
# What advancing a record reads besides the record: its tenant and both connections (the clients need them).
RECORD_RELATED = ("integration__tenant", "integration__partner_connection", "integration__visma_connection")
# How many links of a chain of waiting records (a refund on a capture on an invoice) one posting wakes at once.
WAKE_DEPTH = 3


# --- one record ---------------------------------------------------------------------------------------------


def record_ingest(integration: Integration, stream_name: str, source: SourceObject) -> tuple[SyncRecord, bool]:
    return record_services.record_upsert(
        integration=integration, stream=stream_name, source_id=source.source_id, payload=source.payload,
        source_updated_at=source.updated_at, amount=source.amount, currency=source.currency,
    )


def source_take(integration: Integration, stream: Stream, source: SourceObject) -> tuple[SyncRecord, bool]:
    """A source object a poll or a webhook read: stored, and taken as far as it goes now. Returns the record and
    whether it was already settled (posted, flagged, being written...) and left as it was.

    A new one is mapped and validated before it is stored, then stored already claimed for its write, in one
    transaction; should another worker store it meanwhile, that one is taken as it stands.
    """
    stored = SyncRecord.objects.filter(integration=integration, stream=stream.name,
                                       source_id=source.source_id).only("status").first()
    if stored is None:
        draft = SyncRecord(
            integration=integration, stream=stream.name, source_id=source.source_id, status=S.RECEIVED,
            source_payload=source.payload, source_updated_at=source.updated_at, amount=source.amount,
            currency=source.currency,
        )
        try:
            # Stored only once it is claimed for its write (or once it is known what else became of it).
            return record_advance(draft, stream=stream, fresh=True), False
        except IntegrityError:
            pass  # stored by another worker meanwhile
    elif stored.status in KEPT_AS_DECIDED:
        # Decided or being written: the fresh payload changes nothing (a flagged one is refreshed below).
        return stored, True
    record, created = record_ingest(integration, stream.name, source)
    if not created and record.status in SETTLED:
        return record, True
    return record_advance(record, stream=stream, fresh=True), False


def _stored(record: SyncRecord, source: SourceObject) -> SyncRecord:
    """The record as stored: a new source object that did not become a posting is stored (received) first, so what
    became of it can be recorded and audited."""
    return record if record.pk is not None else record_ingest(record.integration, record.stream, source)[0]


def record_advance(record: SyncRecord, *, stream: Stream | None = None, fresh: bool = False,
                   depth: int = 0) -> SyncRecord:
    """Take a record as far as it can go now: posted, flagged for a person, waiting, or scheduled for a retry.

    `fresh`: the caller has just read or written the record (ingest), or made it and not stored it yet (a new
    source object), so it is not read again.
    """
    if not fresh:
        record = SyncRecord.objects.select_related(*RECORD_RELATED).get(pk=record.pk)
    now = timezone.now()
    if record.status in (S.RETRYING, S.WAITING) and record.next_attempt_at and record.next_attempt_at > now:
        # The backoff (or the next look at what it waits for) holds for pollers and webhooks too.
        return record
    if record.status == S.POSTING and not _lease_expired(record):
        return record
    stream = stream or stream_for(record.integration, record.stream)
    try:
        if record.status in (S.RECEIVED, S.WAITING) or (record.status == S.RETRYING and not record.proposed_posting):
            prepared = _prepare(record, stream)
            record = prepared if isinstance(prepared, SyncRecord) else _post(record, stream, prepared, prepared=True)
        elif record.status in (S.READY, S.APPROVED, S.RETRYING):
            record = _post(record, stream, _posting_of(record))
        elif record.status == S.POSTING:
            record = _recover_interrupted_write(record, stream)
    except record_services.TransitionRefused as refused:
        # Another worker moved the record first; it carries on from there.
        log.info("record %s: %s", record.pk, refused)
        return SyncRecord.objects.select_related(*RECORD_RELATED).get(pk=record.pk)
    if record.status == S.POSTED:
        _waiters_advance(record, depth=depth)
    return record


def _waiters_advance(record: SyncRecord, *, depth: int) -> None:
    """Records waiting on one that just posted go on at once, not at the next sweep."""
    for waiter in record_services.records_wake(record):
        if depth >= WAKE_DEPTH:
            continue  # due now: the sweep takes it
        try:
            record_advance(waiter, depth=depth + 1)
        except Exception:
            # The awaited record is posted whatever becomes of its waiter; the sweep tries the waiter again.
            log.exception("record %s: waking waiter %s failed", record.pk, waiter.pk)


def _posting_of(record: SyncRecord) -> Posting:
    return posting_apply_correction(Posting.from_json(record.proposed_posting), record.corrected_posting)


def _prepare(record: SyncRecord, stream: Stream) -> SyncRecord | Posting:
    """transform → map → validate: the posting to write now, or the record flagged, waiting or retrying."""
    source = SourceObject(
        source_id=record.source_id, payload=record.source_payload, updated_at=record.source_updated_at,
        amount=record.amount, currency=record.currency,
    )
    try:
        posting = stream.transform(source)
    except WaitFor as waiting:
        return record_services.record_wait(_stored(record, source), reason=f"waiting: {waiting}", on=waiting.on)
    except TransientError as exc:
        return _retry_later(_stored(record, source), exc, error=str(exc))
    except (SourceDataError, MoneyError, PermanentError) as exc:
        return record_services.record_flag(_stored(record, source),
                                           reasons=[f"{record.stream} {record.source_id}: {exc}"])
    except Exception as exc:
        # A payload the stream did not expect must not stall its window or the sweep: a person sees it, and
        # replays it once the stream is fixed.
        log.exception("record %s %s: transform failed", record.stream, record.source_id)
        return record_services.record_flag(_stored(record, source), reasons=[
            f"{record.stream} {record.source_id}: could not be read as a posting: {type(exc).__name__}: {exc}"
        ])
    outcome = stream.map(posting)
    if outcome.rule is None and outcome.problems:
        return record_services.record_flag(
            _stored(record, source), reasons=outcome.problems, proposed_posting=posting.to_json(),
            posting_marker=posting.marker,
        )
    try:
        problems = stream.problems(posting)
    except TransientError as exc:
        return _retry_later(_stored(record, source), exc, error=f"could not check reference data: {exc}")
    # The rule's own gaps (no fee account...) say more than the validator's "line has no GL account".
    problems = list(dict.fromkeys([*outcome.problems, *problems]))
    if problems:
        return record_services.record_flag(
            _stored(record, source), reasons=problems, proposed_posting=posting.to_json(), posting_marker=posting.marker
        )
    return posting


def _post(record: SyncRecord, stream: Stream, posting: Posting, *, prepared: bool = False) -> SyncRecord:
    """The crash-safe write: claim (`posting`, marker stored) → look up by marker if a write may have landed →
    write → `posted`. A crash anywhere leaves the record in `posting`, where recovery looks before writing.

    `prepared`: the posting was just mapped and validated, so it is stored with the claim; otherwise (a retry, an
    approval) it is validated again first.
    """
    if not prepared:
        try:
            problems = stream.problems(posting)
        except TransientError as exc:
            return _retry_later(record, exc, error=f"could not check reference data: {exc}")
        if problems:
            # Nothing invalid is ever sent: Visma has no drafts.
            return record_services.record_flag(record, reasons=problems)
    claimed, may_have_landed = record_services.record_claim_write(
        record, proposed_posting=posting.to_json() if prepared else None, posting_marker=posting.marker,
    )
    return _write(claimed, stream, posting, look_up_first=may_have_landed)


def _write(record: SyncRecord, stream: Stream, posting: Posting, *, look_up_first: bool) -> SyncRecord:
    """Under the claim `record` holds: find the document by marker when a write may have landed, else write it."""
    try:
        found = stream.find_posted(posting, record) if look_up_first else None
    except TransientError as exc:
        return _retry_later(record, exc, error=f"lookup by marker {posting.marker} failed: {exc}")
    except PermanentError as exc:
        return record_services.record_flag(record, reasons=[
            f"whether {posting.document} {posting.marker} reached the target could not be looked up: "
            f"{exc.system_message}; check the target for it, then approve or reject"
        ])
    if found:
        return record_services.record_mark_posted(
            record, target_id=found.target_id, target_kind=found.kind, target_status=found.status,
            reason=f"found already posted by marker {posting.marker}",
        )
    try:
        written = stream.write(posting, record)
    except RetryLater as exc:
        # Refused before it was taken (call budget, 429): nothing can have landed.
        return _finish(record, lambda: _retry_later(record, exc, error=str(exc)))
    except TransientError as exc:
        # The answer was lost (a timeout, a 5xx): the write may still land. It is looked up only once it had time to.
        settle_until = timezone.now() + timedelta(seconds=settings.SYNC_WRITE_SETTLE_SECONDS)
        return _finish(record, lambda: record_services.record_schedule_retry(
            record, settle_until=settle_until,
            error=f"{exc}; the write may have reached the target: it is looked up by marker {posting.marker} "
                  f"from {settle_until:%Y-%m-%d %H:%M:%S} UTC before anything is written again"))
    except PermanentError as exc:
        return _finish(record, lambda: record_services.record_flag(
            record, reasons=[f"{posting.document} refused by the target: {exc.system_message}"]))
    return _finish(record, lambda: record_services.record_mark_posted(
        record, target_id=written.target_id, target_kind=written.kind, target_status=written.status, reason="posted",
    ), written=written)


def _finish(record: SyncRecord, finish: Callable[[], SyncRecord], *, written: Written | None = None) -> SyncRecord:
    """End the write under its claim. If the claim was lost meanwhile (this worker's lease ran out and another
    took the record over), and this worker did write, the target may hold the document twice: a person is told."""
    try:
        return finish()
    except record_services.TransitionRefused:
        if written is None:
            raise
        current = SyncRecord.objects.select_related("integration").get(pk=record.pk)
        others = f"; the record is now {current.status}" + (f" as {current.target_id}" if current.target_id else "")
        log.warning("record %s: write %s landed after its claim was lost", record.pk, written.target_id)
        return record_services.record_possible_duplicate(
            current, target_ids=[written.target_id],
            reason=f"possible duplicate in the target: {written.kind} {written.target_id} (marker {written.marker}) "
                   f"was written after this worker's claim ran out{others}; check both and reverse one",
            details={"written": written.target_id, "marker": written.marker},
        )


def _retry_later(record: SyncRecord, exc: TransientError, *, error: str) -> SyncRecord:
    # A system that said when it takes calls again is waited for without spending one of the record's attempts.
    return record_services.record_schedule_retry(record, error=error, not_before=getattr(exc, "retry_at", None))


def _lease_expired(record: SyncRecord) -> bool:
    lease = timedelta(seconds=settings.SYNC_POSTING_LEASE_SECONDS)
    return record.posting_started_at is None or record.posting_started_at <= timezone.now() - lease


def _recover_interrupted_write(record: SyncRecord, stream: Stream) -> SyncRecord:
    """A record left in `posting` (a worker died mid-write, or its write outlived the lease): re-claimed, then
    posted if the target has its marker, else written again under the new claim."""
    posting = _posting_of(record)
    claimed, _ = record_services.record_claim_write(record)
    try:
        written = stream.find_posted(posting, claimed)
    except TransientError as exc:
        return _retry_later(claimed, exc, error=f"recovery lookup failed: {exc}")
    except PermanentError as exc:
        # Whether the interrupted write landed cannot be told: a person checks the target before anything is sent.
        return record_services.record_flag(claimed, reasons=[
            f"an interrupted write could not be looked up by marker {posting.marker}: {exc.system_message}; "
            "check the target for it, then approve or reject"
        ])
    if written:
        return record_services.record_mark_posted(
            claimed, target_id=written.target_id, target_kind=written.kind, target_status=written.status,
            reason=f"interrupted write found in target by marker {posting.marker}",
        )
    return _write(claimed, stream, posting, look_up_first=False)


# --- many records -------------------------------------------------------------------------------------------


def stream_poll(integration: Integration, stream_name: str, *, trigger: str = SyncRun.Trigger.SCHEDULE,
                start: datetime | None = None, end: datetime | None = None,
                progress: Callable[[str], None] | None = None) -> SyncRun:
    """Read one window of a stream, store and advance every object, then move the cursor.

    Without `start`/`end` the window runs from the cursor (less the overlap) to now (less the vendor's
    publication delay), no wider than the vendor allows; the cursor moves only when the whole window is stored, and
    never past what the source says it had published (`Stream.published_until`): that run is complete too.
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
            record, already_settled = source_take(integration, stream, source)
            counts.count(record, already_settled=already_settled)
            if progress and counts.fetched % 50 == 0:
                progress(f"{stream_name}: {counts.fetched} read, {counts.posted} posted, {counts.flagged} flagged")
    except Exception as exc:
        _finish_run(run, counts, status=SyncRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        log.exception("poll of %s %s failed", integration, stream_name)
        raise
    published = stream.published_until()
    published = published if published is not None and published < end else None
    if moves_cursor:
        # Never past what was published, never back behind what an earlier run saw published.
        position = max(published, cursor.position or published) if published is not None else end
        SyncCursor.objects.filter(pk=cursor.pk).update(position=position, updated_at=timezone.now())
    return _finish_run(run, counts, status=SyncRun.Status.COMPLETED, published_until=published)


RUN_COUNTS = ("fetched", "posted", "flagged", "skipped", "waiting", "retrying", "failed")


def _finish_run(run: SyncRun, counts: RunCounts, *, status: str, error: str = "",
                published_until: datetime | None = None) -> SyncRun:
    run.status = status
    run.error = error
    run.published_until = published_until
    run.finished_at = timezone.now()
    for name in RUN_COUNTS:
        setattr(run, name, getattr(counts, name))
    run.save()
    return run


SWEEP_LEASE = "records_advance_due"


def _due_records(now: datetime, *, tenant_slug: str | None = None):
    """Retries and looks that are due, records a crash left behind, writes whose worker died; not claimed by
    another sweep."""
    idle = now - timedelta(minutes=2)
    lease = now - timedelta(seconds=settings.SYNC_POSTING_LEASE_SECONDS)
    return SyncRecord.objects.filter(
        Q(status__in=[S.RETRYING, S.WAITING], next_attempt_at__lte=now)
        | Q(status__in=[S.RECEIVED, S.READY, S.APPROVED], updated_at__lte=idle)
        | Q(status=S.POSTING, posting_started_at__lte=lease),
        Q(sweep_claimed_until__isnull=True) | Q(sweep_claimed_until__lte=now),
        integration__enabled=True, integration__tenant__is_active=True,
        **({"integration__tenant__slug": tenant_slug} if tenant_slug else {}),
    )


def records_claim_due(*, limit: int = 500, now: datetime | None = None, tenant_slug: str | None = None) -> list[int]:
    """Claim a batch of due records for this sweep: rows another sweep is claiming are skipped (PostgreSQL's SKIP
    LOCKED; SQLite's writers queue), and the claimed ones are not due for any other sweep until the claim runs out."""
    now = now or timezone.now()
    claim_until = now + timedelta(seconds=settings.SYNC_POSTING_LEASE_SECONDS)
    with transaction.atomic():
        due = _due_records(now, tenant_slug=tenant_slug).order_by("updated_at")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        ids = list(due.values_list("pk", flat=True)[:limit])
        SyncRecord.objects.filter(pk__in=ids).update(sweep_claimed_until=claim_until)
    return ids


class SweepRunning(Exception):
    """Another sweep holds the lease: this one did not start."""


def records_advance_due(*, limit: int = 500, tenant_slug: str | None = None,
                        counts: RunCounts | None = None) -> int:
    """The sweep: flag waits that lasted too long, then advance a claimed batch of due records. Returns how many
    were advanced; 0 when the previous sweep still runs (it never starts twice at once). `counts` gets each advanced
    record's outcome."""
    try:
        return _sweep(limit=limit, tenant_slug=tenant_slug, counts=counts)
    except SweepRunning:
        log.info("sweep skipped: the previous one still runs")
        return 0


def _sweep(*, limit: int, tenant_slug: str | None, counts: RunCounts | None) -> int:
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not work_lease_take(SWEEP_LEASE, holder=holder, seconds=settings.SYNC_POSTING_LEASE_SECONDS):
        raise SweepRunning(SWEEP_LEASE)
    try:
        records_wait_expire(tenant_slug=tenant_slug)
        advanced = 0
        for record_id in records_claim_due(limit=limit, tenant_slug=tenant_slug):
            try:
                record = record_advance(SyncRecord(pk=record_id))
            except Exception:
                # One record's failure (a stream gone from the registry, a bug) must not stall the whole sweep.
                log.exception("sweep could not advance record %s", record_id)
                continue
            advanced += 1
            if counts is not None:
                counts.count(record, already_settled=False)
        return advanced
    finally:
        work_lease_release(SWEEP_LEASE, holder=holder)


def records_drain(*, tenant_slug: str | None = None, limit: int = 500) -> RunCounts:
    """Advance every record that is due now, batch after batch (an operator without a running worker); raises
    SweepRunning when a worker's sweep holds the lease."""
    counts = RunCounts()
    while _sweep(limit=limit, tenant_slug=tenant_slug, counts=counts) == limit:
        pass
    return counts


def records_wait_expire(*, tenant_slug: str | None = None) -> int:
    """Records that waited longer than SYNC_MAX_WAIT_SECONDS are flagged: nothing waits forever unseen."""
    longest = timezone.now() - timedelta(seconds=settings.SYNC_MAX_WAIT_SECONDS)
    expired = 0
    waited_too_long = SyncRecord.objects.filter(status=S.WAITING, waiting_since__lte=longest)
    if tenant_slug:
        waited_too_long = waited_too_long.filter(integration__tenant__slug=tenant_slug)
    for record in waited_too_long.select_related("integration"):
        try:
            record_services.record_wait_expire(record)
            expired += 1
        except record_services.TransitionRefused:
            continue  # it moved on meanwhile
    return expired


def work_lease_take(name: str, *, holder: str, seconds: float) -> bool:
    """Hold the named lease for `seconds` unless someone else holds it now (one conditional UPDATE)."""
    now = timezone.now()
    WorkLease.objects.get_or_create(name=name)
    return bool(WorkLease.objects.filter(Q(held_until__isnull=True) | Q(held_until__lte=now), name=name).update(
        holder=holder, held_until=now + timedelta(seconds=seconds)))


def work_lease_release(name: str, *, holder: str) -> None:
    WorkLease.objects.filter(name=name, holder=holder).update(holder="", held_until=None)


# --- webhooks -------------------------------------------------------------------------------------------------


def inbound_event_process(event: InboundEvent) -> InboundEvent:
    """Turn a stored webhook into records: the kind's verifier says which objects it touches; each is re-read."""
    # Counting the attempt takes the event on: one that is processed (or ignored) already is left as it is.
    waiting = [InboundEvent.Status.PENDING, InboundEvent.Status.FAILED]
    if not InboundEvent.objects.filter(pk=event.pk, status__in=waiting).update(attempts=F("attempts") + 1):
        return InboundEvent.objects.get(pk=event.pk)
    event = InboundEvent.objects.select_related(
        "integration__tenant", "integration__partner_connection", "integration__visma_connection").get(pk=event.pk)
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
            source_take(integration, stream, source)
    except Exception as exc:
        log.exception("inbound event %s failed", event.pk)
        return _event_done(event, InboundEvent.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
    return _event_done(event, InboundEvent.Status.PROCESSED)


def _event_done(event: InboundEvent, status: str, *, error: str = "") -> InboundEvent:
    event.status, event.error, event.processed_at = status, error, timezone.now()
    event.save(update_fields=["status", "error", "processed_at"])
    return event
