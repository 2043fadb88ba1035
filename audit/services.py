"""The only way a SyncRecord changes state: each transition is checked and audited in one transaction."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import AuditEntry, RecordStatus, SyncRecord

S = RecordStatus

# from-status → the statuses it may move to. `posted` and `rejected` are final.
# Every write goes through `posting` (the claim), so `posted` is reached only from there.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.RECEIVED: frozenset({S.READY, S.FLAGGED, S.RETRYING, S.FAILED}),
    S.READY: frozenset({S.POSTING, S.FLAGGED, S.RETRYING, S.FAILED}),
    S.POSTING: frozenset({S.POSTED, S.FLAGGED, S.RETRYING, S.FAILED}),
    S.RETRYING: frozenset({S.READY, S.POSTING, S.FLAGGED, S.RETRYING, S.FAILED}),
    S.FLAGGED: frozenset({S.RECEIVED, S.APPROVED, S.REJECTED}),
    S.APPROVED: frozenset({S.POSTING, S.FLAGGED, S.RETRYING, S.FAILED}),
    S.FAILED: frozenset({S.RECEIVED}),
    S.POSTED: frozenset(),
    S.REJECTED: frozenset(),
}


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


def _audit(record: SyncRecord, *, actor: Actor, from_status: str, to_status: str, reason: str,
           action: str = AuditEntry.Action.TRANSITION, details: dict | None = None) -> AuditEntry:
    return AuditEntry.objects.create(
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


def _locked(record: SyncRecord) -> SyncRecord:
    return SyncRecord.objects.select_for_update().select_related("integration").get(pk=record.pk)


def record_transition(record: SyncRecord, to_status: str, *, actor: Actor = SYSTEM, reason: str = "",
                      details: dict | None = None, expected: frozenset[str] | set[str] | None = None,
                      expected_claim: datetime | None = None, **changes) -> SyncRecord:
    """Move a record to `to_status` under a row lock, apply `changes`, and audit it; refuse a wrong state.

    `expected`: the statuses the caller saw; if another worker moved the record meanwhile, refuse.
    `expected_claim`: the `posting_started_at` the caller saw; if another worker claimed the write since, refuse.
    """
    with transaction.atomic():
        locked = _locked(record)
        from_status = locked.status
        if to_status not in ALLOWED_TRANSITIONS[from_status] or (expected is not None and from_status not in expected):
            raise TransitionRefused(
                f"Cannot move record {locked.stream}/{locked.source_id} from {from_status} to {to_status} "
                f"(status: {from_status})"
            )
        if expected_claim is not None and locked.posting_started_at != expected_claim:
            claimed = f"{locked.posting_started_at:%Y-%m-%d %H:%M:%S} UTC" if locked.posting_started_at else "since"
            raise TransitionRefused(
                f"Cannot move record {locked.stream}/{locked.source_id} from {from_status} to {to_status}: "
                f"another worker claimed the write at {claimed}"
            )
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.status = to_status
        locked.save()
        _audit(locked, actor=actor, from_status=from_status, to_status=to_status, reason=reason, details=details)
    return locked


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
        if not is_newer or record.status not in (S.RECEIVED, S.FLAGGED, S.RETRYING, S.FAILED):
            return record, False
        changed = (payload, amount, currency) != (record.source_payload, record.amount, record.currency)
        if changed and record.status == S.FLAGGED:
            # The review was about the old object: map the new one again rather than let it be approved.
            record = record_transition(
                record, S.RECEIVED, actor=actor, reason="the source object changed: mapped again",
                expected={S.FLAGGED}, proposed_posting=None, corrected_posting=None, **defaults,
            )
            return record, False
        for field, value in defaults.items():
            setattr(record, field, value)
        update_fields = [*defaults, "updated_at"]
        if changed and record.status == S.RETRYING:
            record.proposed_posting = None  # re-mapped from the new payload at the next attempt
            update_fields.append("proposed_posting")
        record.save(update_fields=update_fields)
    return record, False


# --- the pipeline's decisions ----------------------------------------------------------------------------


def record_mark_ready(record: SyncRecord, *, proposed_posting: dict, posting_marker: str) -> SyncRecord:
    return record_transition(
        record, S.READY, reason="mapped and validated", expected={record.status},
        proposed_posting=proposed_posting, posting_marker=posting_marker, reasons=[],
    )


def record_flag(record: SyncRecord, *, reasons: list[str], proposed_posting: dict | None = None,
                posting_marker: str | None = None, actor: Actor = SYSTEM) -> SyncRecord:
    changes: dict[str, Any] = {"reasons": reasons, "next_attempt_at": None}
    if proposed_posting is not None:
        changes["proposed_posting"] = proposed_posting
    if posting_marker is not None:
        changes["posting_marker"] = posting_marker
    return record_transition(
        record, S.FLAGGED, actor=actor, reason="; ".join(reasons), expected={record.status}, **changes
    )


def record_start_posting(record: SyncRecord) -> SyncRecord:
    """Claim the write: only one worker gets a record into `posting`; the marker is stored before the write."""
    return record_transition(
        record, S.POSTING, reason=f"writing to target with marker {record.posting_marker}",
        expected={record.status}, posting_started_at=timezone.now(), write_attempted=True,
    )


def record_mark_posted(record: SyncRecord, *, target_id: str, target_kind: str = "", reason: str = "posted",
                       actor: Actor = SYSTEM) -> SyncRecord:
    return record_transition(
        record, S.POSTED, actor=actor, reason=reason, target_id=target_id, target_kind=target_kind,
        next_attempt_at=None, last_error="", reasons=[],
    )


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with full jitter, capped."""
    base = settings.SYNC_RETRY_BASE_SECONDS
    ceiling = min(settings.SYNC_RETRY_MAX_SECONDS, base * (2 ** max(attempts - 1, 0)))
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))


def record_schedule_retry(record: SyncRecord, *, error: str, not_before: datetime | None = None) -> SyncRecord:
    """A transient failure: try again later, or give up (`failed`, replayable) after the last attempt.

    `not_before`: the system said when it will take calls again (call budget spent, a long Retry-After); that
    wait is not the record's failure, so it costs no attempt.
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
    return record_transition(
        record, S.RETRYING, reason=f"attempt {attempts} failed, next at {next_attempt_at:%Y-%m-%d %H:%M:%S} UTC: {error}",
        attempts=attempts, last_error=error, next_attempt_at=next_attempt_at,
    )


def record_fail(record: SyncRecord, *, error: str) -> SyncRecord:
    return record_transition(record, S.FAILED, reason=error, last_error=error, next_attempt_at=None, reasons=[error])


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
            locked, S.APPROVED, actor=Actor.of(user), reason=reason, expected={S.FLAGGED},
            corrected_posting=corrected_posting,
            details={"corrected_posting": corrected_posting} if corrected_posting else None,
        )


def record_reject(record: SyncRecord, *, user, reason: str) -> SyncRecord:
    if not reason.strip():
        raise TransitionRefused("A rejection needs a reason.")
    with transaction.atomic():
        locked = _locked_in(record, {S.FLAGGED}, "reject")
        return record_transition(locked, S.REJECTED, actor=Actor.of(user), reason=reason, expected={S.FLAGGED})


def record_replay(record: SyncRecord, *, actor: Actor = SYSTEM, reason: str = "replay") -> SyncRecord:
    """Send a flagged or failed record through the pipeline again (after a mapping fix, an outage...).

    It goes back to `received`: mapped and validated afresh before any write; its marker stays, so a write
    that may have reached the target is looked up first.
    """
    with transaction.atomic():
        locked = _locked_in(record, {S.FLAGGED, S.FAILED}, "replay")
        return record_transition(
            locked, S.RECEIVED, actor=actor, reason=reason, expected={S.FLAGGED, S.FAILED}, attempts=0,
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
