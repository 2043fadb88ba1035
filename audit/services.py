"""The only way a SyncRecord changes state: each transition is checked and audited in one transaction."""
from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from mappings.documents import Posting, posting_apply_correction
from mappings.periods import FinancialCalendar

from .models import AuditEntry, RecordStatus, SyncRecord

S = RecordStatus

# from-status → the statuses it may move to. `posted` and `rejected` are final.
# Every write goes through `posting` (the claim), so `posted` is reached only from there; `posting` → `posting` is
# a recovery re-claiming a write whose worker's lease ran out.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.RECEIVED: frozenset({S.READY, S.FLAGGED, S.RETRYING, S.WAITING, S.FAILED}),
    S.READY: frozenset({S.POSTING, S.FLAGGED, S.RETRYING, S.FAILED}),
    S.POSTING: frozenset({S.POSTED, S.FLAGGED, S.RETRYING, S.FAILED, S.POSTING}),
    S.RETRYING: frozenset({S.READY, S.POSTING, S.FLAGGED, S.RETRYING, S.WAITING, S.FAILED}),
    S.WAITING: frozenset({S.READY, S.FLAGGED, S.RETRYING, S.WAITING, S.FAILED}),
    S.FLAGGED: frozenset({S.RECEIVED, S.APPROVED, S.REJECTED, S.FLAGGED}),
    S.APPROVED: frozenset({S.POSTING, S.FLAGGED, S.RETRYING, S.FAILED}),
    S.FAILED: frozenset({S.RECEIVED}),
    S.POSTED: frozenset(),
    S.REJECTED: frozenset(),
}
# Where a record may keep what it waits for: while waiting, and flagged because of the wait (revived when the
# awaited record posts).
KEEPS_WAITING_ON = frozenset({S.WAITING, S.FLAGGED})


class TransitionRefused(Exception):
    """A service was asked for a change the record's state does not allow."""


@dataclass(frozen=True)
class Actor:
    """Who made a change: the system, or a person (whose user row is kept)."""

    name: str = "system"
    user: Any = None

    @classmethod
    def of(cls, user) -> Actor:
        return cls(name=user.get_username(), user=user)


SYSTEM = Actor()


def _audit_entry(record: SyncRecord, *, actor: Actor, from_status: str, to_status: str, reason: str,
                 action: str = AuditEntry.Action.TRANSITION, details: dict | None = None) -> AuditEntry:
    return AuditEntry(
        actor=actor.name,
        user=actor.user,
        action=action,
        tenant_id=record.integration.tenant_id,
        integration_id=record.integration_id,
        sync_record=record,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        source_id=record.source_id,
        target_id=record.target_id,
        details=details or {},
    )


def _audit(record: SyncRecord, **entry) -> AuditEntry:
    audit_entry = _audit_entry(record, **entry)
    audit_entry.save()
    return audit_entry


def _locked(record: SyncRecord) -> SyncRecord:
    return SyncRecord.objects.select_for_update().select_related("integration").get(pk=record.pk)


def _refused(record: SyncRecord, to_status: str) -> TransitionRefused:
    """Why a change made from `record` (a copy) did not apply: the stored record moved on meanwhile."""
    current = SyncRecord.objects.filter(pk=record.pk).values("status", "posting_started_at").first() or {}
    now = current.get("status", "gone")
    if now == S.POSTING and record.status == S.POSTING:
        claimed = current.get("posting_started_at")
        when = f"{claimed:%Y-%m-%d %H:%M:%S} UTC" if claimed else "since"
        return TransitionRefused(
            f"Cannot move record {record.stream}/{record.source_id} from posting to {to_status}: another worker "
            f"claimed the write at {when}"
        )
    return TransitionRefused(
        f"Cannot move record {record.stream}/{record.source_id} from {record.status} to {to_status}: it was "
        f"changed meanwhile (status: {now})"
    )


def _move(record: SyncRecord, path: list[tuple[str, str]], *, actor: Actor = SYSTEM, details: dict | None = None,
          changes: dict | None = None) -> SyncRecord:
    """Move `record` along `path` ((status, reason) steps, each allowed from the one before) in one UPDATE that
    applies only if the stored record is still the version this copy was read at, with one audit entry per step.

    Returns the moved copy. Only the changed fields are written.
    """
    changes = dict(changes or {})
    from_status = record.status
    steps = []
    for to_status, reason in path:
        if to_status not in ALLOWED_TRANSITIONS[from_status]:
            raise TransitionRefused(
                f"Cannot move record {record.stream}/{record.source_id} from {from_status} to {to_status} "
                f"(status: {record.status})"
            )
        steps.append((from_status, to_status, reason))
        from_status = to_status
    final = path[-1][0]
    if final not in KEEPS_WAITING_ON and (record.waiting_on_stream or record.waiting_since):
        changes.setdefault("waiting_on_stream", "")
        changes.setdefault("waiting_on_source_id", "")
        changes.setdefault("waiting_since", None)
    values = {**changes, "status": final, "version": record.version + 1, "updated_at": timezone.now()}
    with transaction.atomic():
        if not SyncRecord.objects.filter(pk=record.pk, version=record.version).update(**values):
            raise _refused(record, final)
        moved = copy.copy(record)
        for name, value in values.items():
            setattr(moved, name, value)
        AuditEntry.objects.bulk_create([
            _audit_entry(moved, actor=actor, from_status=before, to_status=after, reason=reason, details=details)
            for before, after, reason in steps
        ])
        if final in (S.FLAGGED, S.REJECTED):
            _waiters_flag(moved)
    return moved


def record_transition(record: SyncRecord, to_status: str, *, actor: Actor = SYSTEM, reason: str = "",
                      details: dict | None = None, **changes) -> SyncRecord:
    """Move a record to `to_status`, apply `changes`, and audit it; refuse a wrong state, and refuse a change made
    from a stale copy (another worker moved the record, or claimed its write, since this copy was read)."""
    return _move(record, [(to_status, reason)], actor=actor, details=details, changes=changes)


# --- intake -----------------------------------------------------------------------------------------------


def record_upsert(*, integration, stream: str, source_id: str, payload: dict, source_updated_at: datetime | None,
                  amount: Decimal | None, currency: str, actor: Actor = SYSTEM) -> tuple[SyncRecord, bool]:
    """The one row for (integration, stream, source id): created as `received`, or refreshed while undecided.

    Webhooks, pollers and replays racing on one source object meet on this row, never on two. A refreshed
    source that changed drops the posting made from the old one, so nothing stale is ever written or approved.
    """
    defaults = dict(source_payload=payload, source_updated_at=source_updated_at, amount=amount, currency=currency)
    try:
        with transaction.atomic():
            record = SyncRecord.objects.create(
                integration=integration, stream=stream, source_id=source_id, status=S.RECEIVED, **defaults
            )
            _audit(record, actor=actor, from_status="", to_status=S.RECEIVED, reason="received from source")
            return record, True
    except IntegrityError:
        pass
    with transaction.atomic():
        record = SyncRecord.objects.select_for_update().select_related("integration").get(
            integration=integration, stream=stream, source_id=source_id
        )
        is_newer = source_updated_at is None or record.source_updated_at is None or (
            source_updated_at >= record.source_updated_at
        )
        # A posted, rejected, approved or in-flight (ready, posting) record keeps the payload it was decided on.
        if not is_newer or record.status not in (S.RECEIVED, S.FLAGGED, S.RETRYING, S.WAITING, S.FAILED):
            return record, False
        # Compared as stored: a Decimal in the payload is kept as its text (SyncRecord.source_payload's encoder).
        stored = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))
        changed = (stored, amount, currency) != (record.source_payload, record.amount, record.currency)
        if not changed and source_updated_at == record.source_updated_at:
            return record, False
        if changed and record.status == S.FLAGGED:
            # The review was about the old object: map the new one again rather than let it be approved.
            record = record_transition(
                record, S.RECEIVED, actor=actor, reason="the source object changed: mapped again",
                proposed_posting=None, corrected_posting=None, **defaults,
            )
            return record, False
        for field, value in defaults.items():
            setattr(record, field, value)
        update_fields = [*defaults, "updated_at", "version"]
        record.version += 1
        if changed and record.status in (S.RETRYING, S.WAITING):
            record.proposed_posting = None  # re-mapped from the new payload at the next attempt
            update_fields.append("proposed_posting")
        record.save(update_fields=update_fields)
    return record, False


# --- the pipeline's decisions ----------------------------------------------------------------------------


def record_flag(record: SyncRecord, *, reasons: list[str], proposed_posting: dict | None = None,
                posting_marker: str | None = None, actor: Actor = SYSTEM, keep_waiting: bool = False,
                **waiting_on) -> SyncRecord:
    """Stop for a person, with the reasons. `keep_waiting`: flagged because of what it waits for (`waiting_on`:
    waiting_on_stream, waiting_on_source_id, waiting_since, when it did not wait yet), and revived (mapped again) by
    itself once that record posts."""
    changes: dict[str, Any] = {"reasons": reasons, "next_attempt_at": None, **waiting_on}
    if proposed_posting is not None:
        changes["proposed_posting"] = proposed_posting
    if posting_marker is not None:
        changes["posting_marker"] = posting_marker
    if not keep_waiting:
        changes.update(waiting_on_stream="", waiting_on_source_id="", waiting_since=None)
    return record_transition(record, S.FLAGGED, actor=actor, reason="; ".join(reasons), **changes)


def record_claim_write(record: SyncRecord, *, proposed_posting: dict | None = None,
                       posting_marker: str | None = None) -> tuple[SyncRecord, bool]:
    """Claim the write: only one worker gets a record into `posting`; the marker is stored before the write.

    Returns the claimed record (its version is the claim: only it may finish the write) and whether a write may
    already have landed (an earlier claim wrote, or may have) — read from the stored record the claim was taken on,
    never from an older copy. With `proposed_posting` the record was just mapped and validated: `ready` and the
    claim are one change (two audit entries). From `posting` it re-claims a write whose worker's lease ran out.

    A record not stored yet (a new source object mapped before it was stored) is stored already claimed, its arrival
    audited too, in one transaction; IntegrityError when another worker stored the same source object meanwhile.
    """
    marker = posting_marker or record.posting_marker
    if record.pk is None:
        return _create_claimed(record, proposed_posting=proposed_posting, posting_marker=marker), False
    claim = (S.POSTING, f"writing to target with marker {marker}")
    changes: dict[str, Any] = {"posting_started_at": timezone.now(), "write_attempted": True,
                               "sweep_claimed_until": None, "next_attempt_at": None}
    path = [claim]
    if proposed_posting is not None:
        changes.update(proposed_posting=proposed_posting, posting_marker=marker, reasons=[])
        path = [(S.READY, "mapped and validated"), claim]
    elif record.status == S.POSTING:
        path = [(S.POSTING, f"the write's lease ran out: looked up by marker {marker} before anything is written")]
    may_have_landed = record.write_attempted
    return _move(record, path, changes=changes), may_have_landed


def _create_claimed(draft: SyncRecord, *, proposed_posting: dict | None, posting_marker: str) -> SyncRecord:
    draft.status, draft.version = S.POSTING, 1
    draft.proposed_posting, draft.posting_marker, draft.reasons = proposed_posting, posting_marker, []
    draft.posting_started_at, draft.write_attempted = timezone.now(), True
    with transaction.atomic():
        draft.save(force_insert=True)
        AuditEntry.objects.bulk_create([
            _audit_entry(draft, actor=SYSTEM, from_status=before, to_status=after, reason=reason)
            for before, after, reason in (
                ("", S.RECEIVED, "received from source"), (S.RECEIVED, S.READY, "mapped and validated"),
                (S.READY, S.POSTING, f"writing to target with marker {posting_marker}"),
            )
        ])
    return draft


def record_mark_posted(record: SyncRecord, *, target_id: str, target_kind: str = "", target_status: str = "",
                       reason: str = "posted", actor: Actor = SYSTEM) -> SyncRecord:
    """The write is done; refused unless `record` is the claim that wrote (no other worker moved it since).
    `target_status`: the target's own status of the document (Visma: Hold, Balanced, Open, Posted...)."""
    return record_transition(
        record, S.POSTED, actor=actor, reason=reason, target_id=target_id, target_kind=target_kind,
        target_status=target_status, next_attempt_at=None, last_error="", reasons=[],
        details={"target_status": target_status} if target_status else None,
    )


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with full jitter, capped."""
    base = settings.SYNC_RETRY_BASE_SECONDS
    ceiling = min(settings.SYNC_RETRY_MAX_SECONDS, base * (2 ** max(attempts - 1, 0)))
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))


def record_schedule_retry(record: SyncRecord, *, error: str, not_before: datetime | None = None,
                          settle_until: datetime | None = None) -> SyncRecord:
    """A transient failure: try again later, or give up (`failed`, replayable) after the last attempt.

    `not_before`: the system said when it will take calls again (call budget spent, a long Retry-After); that
    wait is not the record's failure, so it costs no attempt. `settle_until`: a write whose answer was lost may
    still commit in the target until then; the next attempt, which looks it up first, waits at least that long.
    """
    if not_before is not None:
        return record_transition(
            record, S.RETRYING, reason=f"{error}; next attempt at {not_before:%Y-%m-%d %H:%M:%S} UTC",
            last_error=error, next_attempt_at=not_before,
        )
    attempts = record.attempts + 1
    if attempts >= settings.SYNC_MAX_ATTEMPTS:
        return record_transition(
            record, S.FAILED, reason=f"gave up after {attempts} attempts: {error}", attempts=attempts,
            last_error=error, next_attempt_at=None, reasons=[error],
        )
    next_attempt_at = timezone.now() + retry_delay(attempts)
    if settle_until is not None and settle_until > next_attempt_at:
        next_attempt_at = settle_until
    return record_transition(
        record, S.RETRYING, reason=f"attempt {attempts} failed, next at {next_attempt_at:%Y-%m-%d %H:%M:%S} UTC: {error}",
        attempts=attempts, last_error=error, next_attempt_at=next_attempt_at,
    )


def record_fail(record: SyncRecord, *, error: str) -> SyncRecord:
    return record_transition(record, S.FAILED, reason=error, last_error=error, next_attempt_at=None, reasons=[error])


# --- waiting on another record ----------------------------------------------------------------------------


def record_wait(record: SyncRecord, *, reason: str, on: tuple[str, str] | None = None) -> SyncRecord:
    """The record needs another one first (a refund its capture) or the source to finish (a pending capture): it
    waits, without spending attempts, and is looked at again every SYNC_WAIT_SECONDS, at once when the awaited record
    posts, and is flagged when that one is flagged or rejected, or after SYNC_MAX_WAIT_SECONDS.

    Still waiting for the same thing is no change of state: only the next look is scheduled (no audit entry).
    """
    now = timezone.now()
    on_stream, on_source_id = on or ("", "")
    if on is not None:
        awaited = SyncRecord.objects.filter(integration_id=record.integration_id, stream=on_stream,
                                            source_id=on_source_id).first()
        if awaited is not None and awaited.status in (S.FLAGGED, S.REJECTED):
            # Waiting on a record that itself waits for a person would only end in the longest wait.
            return _waiter_flag(record, awaited, waiting_on_stream=on_stream, waiting_on_source_id=on_source_id,
                                waiting_since=record.waiting_since or now)
    next_look = now + timedelta(seconds=settings.SYNC_WAIT_SECONDS)
    same = (record.status == S.WAITING and (record.waiting_on_stream, record.waiting_on_source_id) == (on_stream,
            on_source_id) and record.last_error == reason)
    if same:
        values = {"next_attempt_at": next_look, "version": record.version + 1, "updated_at": now}
        if not SyncRecord.objects.filter(pk=record.pk, version=record.version).update(**values):
            raise _refused(record, S.WAITING)
        waited = copy.copy(record)
        for name, value in values.items():
            setattr(waited, name, value)
        return waited
    return record_transition(
        record, S.WAITING, reason=reason, last_error=reason, next_attempt_at=next_look,
        waiting_on_stream=on_stream, waiting_on_source_id=on_source_id,
        waiting_since=record.waiting_since if record.status == S.WAITING and record.waiting_since else now,
    )


def _waiting_on(record: SyncRecord):
    return SyncRecord.objects.filter(
        integration_id=record.integration_id, waiting_on_stream=record.stream, waiting_on_source_id=record.source_id,
        status__in=KEEPS_WAITING_ON,
    ).select_related("integration")


def _awaited(record: SyncRecord) -> str:
    return f"{record.stream} {record.source_id}"


def _waiters_flag(awaited: SyncRecord) -> None:
    """The awaited record stopped for a person (flagged) or for good (rejected): who waits on it stops too."""
    # A rejection also ends what was flagged only because of the wait: it will never be revived.
    waiters = _waiting_on(awaited)
    if awaited.status == S.FLAGGED:
        waiters = waiters.filter(status=S.WAITING)
    for waiter in waiters:
        _waiter_flag(waiter, awaited)


def _waiter_flag(waiter: SyncRecord, awaited: SyncRecord, **waiting_on) -> SyncRecord:
    """Flag a record because what it waits for stopped: revived by itself when that one still posts (flagged), or
    for good (rejected)."""
    why = "; ".join(str(reason) for reason in awaited.reasons or []) if awaited.status == S.FLAGGED else ""
    state = "was rejected" if awaited.status == S.REJECTED else "is flagged for review"
    reason = f"{_awaited(awaited)}, which this record waits for, {state}" + (f" ({why})" if why else "")
    if awaited.status == S.FLAGGED:
        reason += "; this record is mapped again by itself once that one is posted"
        return record_flag(waiter, reasons=[reason], keep_waiting=True, **waiting_on)
    return record_flag(waiter, reasons=[reason + ": reject this record too, or book it by hand"])


def records_wake(awaited: SyncRecord) -> list[SyncRecord]:
    """The awaited record is posted: records waiting on it are due now, and those flagged only because of it are
    mapped again. Returns them, for the caller to advance at once."""
    woken = []
    for waiter in _waiting_on(awaited):
        reason = f"{_awaited(awaited)}, which this record waited for, is posted"
        if waiter.status == S.FLAGGED:
            woken.append(record_transition(
                waiter, S.RECEIVED, reason=f"{reason}: mapped again", proposed_posting=None, corrected_posting=None,
                next_attempt_at=None,
            ))
        else:
            moved = SyncRecord.objects.filter(pk=waiter.pk, version=waiter.version).update(
                next_attempt_at=timezone.now(), version=waiter.version + 1)
            if moved:
                waiter.version += 1
                woken.append(waiter)
    return woken


def record_wait_expire(record: SyncRecord) -> SyncRecord:
    """A record waited longer than SYNC_MAX_WAIT_SECONDS: a person looks (revived by itself if the awaited record
    still posts)."""
    hours = settings.SYNC_MAX_WAIT_SECONDS / 3600
    since = f"{record.waiting_since:%Y-%m-%d %H:%M} UTC" if record.waiting_since else "long"
    awaited = f" for {record.waiting_on_stream} {record.waiting_on_source_id}" if record.waiting_on_stream else ""
    return record_flag(record, keep_waiting=True, reasons=[
        f"waited{awaited} since {since}, longer than the longest wait ({hours:g} h): {record.last_error}"
    ])


# --- a write that may have landed twice -------------------------------------------------------------------


def record_possible_duplicate(record: SyncRecord, *, target_ids: list[str], reason: str,
                              details: dict | None = None) -> SyncRecord:
    """Documents in the target carry this record's marker besides the one it posted (a write that lost its claim,
    or found by the duplicate check): audited with both systems' ids and shown to finance until checked."""
    with transaction.atomic():
        locked = _locked(record)
        known = list(locked.duplicate_targets or [])
        new = [target for target in target_ids if target and target not in known and target != locked.target_id]
        if not new:
            return locked
        locked.duplicate_targets = known + new
        locked.version += 1
        locked.save(update_fields=["duplicate_targets", "version", "updated_at"])
        _audit(locked, actor=SYSTEM, from_status=locked.status, to_status=locked.status, reason=reason,
               action=AuditEntry.Action.POSSIBLE_DUPLICATE,
               details={"target_ids": [locked.target_id, *locked.duplicate_targets], **(details or {})})
    return locked


def record_duplicate_resolve(record: SyncRecord, *, user, note: str) -> SyncRecord:
    """Finance checked the possible duplicates in the target (reversed the extra one, or found it is not one)."""
    if not note.strip():
        raise TransitionRefused("Say what was done about the possible duplicate.")
    with transaction.atomic():
        locked = _locked(record)
        if not locked.duplicate_targets:
            raise TransitionRefused(f"{locked.stream}/{locked.source_id} has no possible duplicate to check")
        checked = list(locked.duplicate_targets)
        locked.duplicate_targets = []
        locked.version += 1
        locked.save(update_fields=["duplicate_targets", "version", "updated_at"])
        _audit(locked, actor=Actor.of(user), from_status=locked.status, to_status=locked.status, reason=note,
               action=AuditEntry.Action.DUPLICATE_RESOLVED, details={"target_ids": checked})
    return locked


# --- what a person does in the review queue --------------------------------------------------------------


def _locked_in(record: SyncRecord, statuses: set[str], verb: str) -> SyncRecord:
    """The stored record under lock, refused with a clear message unless it is in one of `statuses` now."""
    locked = _locked(record)
    if locked.status not in statuses:
        raise TransitionRefused(f"Cannot {verb} a {locked.status} record (status: {locked.status})")
    return locked


def record_approve(record: SyncRecord, *, user, corrected_posting: dict | None = None, note: str = "") -> SyncRecord:
    """Finance says: post it, possibly with corrected accounts and dimensions (re-validated before the write)."""
    with transaction.atomic():
        locked = _locked_in(record, {S.FLAGGED}, "approve")
        if not locked.proposed_posting:
            raise TransitionRefused(
                f"Cannot approve {locked.stream}/{locked.source_id}: there is no posting to write (the source could "
                "not be read as one); fix the source and replay it"
            )
        reason = note or ("approved with corrections" if corrected_posting else "approved")
        return record_transition(
            locked, S.APPROVED, actor=Actor.of(user), reason=reason, corrected_posting=corrected_posting,
            details={"corrected_posting": corrected_posting} if corrected_posting else None,
        )


def record_approve_into_open_period(record: SyncRecord, *, user, corrected_posting: dict | None = None,
                                    note: str = "") -> SyncRecord:
    """Finance says: post it in the first financial period open for it, its own closed (or missing) in Visma's
    calendar: booked on that period's first day (or on its own date, when its period is open). Audited with the
    period chosen; the write is validated again, so it posts once, or is flagged again."""
    if not record.proposed_posting:
        raise TransitionRefused(f"Cannot approve {record.stream}/{record.source_id}: there is no posting to write")
    posting = posting_apply_correction(Posting.from_json(record.proposed_posting), corrected_posting)
    calendar = FinancialCalendar(record.integration.tenant)
    period = calendar.first_open(posting.date, posting.document)
    if period is None:
        raise TransitionRefused(
            f"Cannot approve {record.stream}/{record.source_id} into an open period: Visma's calendar (as mirrored) "
            f"has no period open for a {posting.document} from {posting.date.isoformat()}; open one in Visma and "
            "refresh the reference data"
        )
    day = max(posting.date, period.start_date)
    reason = note or f"approved into financial period {period.period_id}, booked on {day.isoformat()}"
    return record_approve(record, user=user, corrected_posting={**(corrected_posting or {}), "date": day.isoformat()},
                          note=reason)


def record_reject(record: SyncRecord, *, user, reason: str) -> SyncRecord:
    if not reason.strip():
        raise TransitionRefused("A rejection needs a reason.")
    with transaction.atomic():
        locked = _locked_in(record, {S.FLAGGED}, "reject")
        return record_transition(locked, S.REJECTED, actor=Actor.of(user), reason=reason)


def record_replay(record: SyncRecord, *, actor: Actor = SYSTEM, reason: str = "replay") -> SyncRecord:
    """Send a flagged or failed record through the pipeline again (after a mapping fix, an outage...).

    It goes back to `received`: mapped and validated afresh before any write; its marker stays, so a write
    that may have reached the target is looked up first.
    """
    with transaction.atomic():
        locked = _locked_in(record, {S.FLAGGED, S.FAILED}, "replay")
        return record_transition(
            locked, S.RECEIVED, actor=actor, reason=reason, attempts=0,
            next_attempt_at=None, last_error="", proposed_posting=None, corrected_posting=None,
        )


def webhook_rejection_audit(*, integration, reason: str, details: dict) -> AuditEntry:
    """A webhook that failed verification: kept in the trail, never processed."""
    return AuditEntry.objects.create(
        actor="system",
        action=AuditEntry.Action.WEBHOOK_REJECTED,
        tenant_id=integration.tenant_id if integration else None,
        integration=integration,
        reason=reason,
        details=details,
    )


def configuration_audit(*, tenant, reason: str, actor: Actor = SYSTEM, integration=None,
                        details: dict | None = None) -> AuditEntry:
    """A change of set-up (a tenant loaded, a connection's credentials replaced): who, when, what; never values."""
    return AuditEntry.objects.create(
        actor=actor.name,
        user=actor.user,
        action=AuditEntry.Action.CONFIGURATION,
        tenant=tenant,
        integration=integration,
        reason=reason,
        details=details or {},
    )
