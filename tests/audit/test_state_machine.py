"""The record's state machine: every allowed move audited once, every other move refused and left unwritten."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
import time_machine
from django.db import transaction

from audit.models import AuditEntry, RecordStatus, SyncRecord
from audit.services import (
    ALLOWED_TRANSITIONS,
    Actor,
    TransitionRefused,
    record_approve,
    record_reject,
    record_replay,
    record_schedule_retry,
    record_transition,
    record_upsert,
)
from tests.factories import IntegrationFactory, SyncRecordFactory, UserFactory

pytestmark = pytest.mark.django_db

STATUSES = [status.value for status in RecordStatus]
PAIRS = [(from_status, to_status) for from_status in STATUSES for to_status in STATUSES]
ALLOWED = [pair for pair in PAIRS if pair[1] in ALLOWED_TRANSITIONS[pair[0]]]
REFUSED = [pair for pair in PAIRS if pair[1] not in ALLOWED_TRANSITIONS[pair[0]]]
NOON = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PROPOSED = {"document": "journal", "marker": "pay:SRC", "lines": []}


def test_the_table_covers_every_status_and_the_final_ones_lead_nowhere():
    # then
    assert sorted(ALLOWED_TRANSITIONS) == sorted(STATUSES)
    assert len(ALLOWED) == 34
    assert len(REFUSED) == 66
    assert ALLOWED_TRANSITIONS["posted"] == frozenset()
    assert ALLOWED_TRANSITIONS["rejected"] == frozenset()
    assert {from_status for from_status, to_status in ALLOWED if to_status == "posted"} == {"posting"}


@pytest.mark.parametrize(("from_status", "to_status"), ALLOWED, ids=[f"{a}->{b}" for a, b in ALLOWED])
def test_an_allowed_transition_moves_the_record_and_writes_one_audit_entry(from_status, to_status):
    # given
    record = SyncRecordFactory(status=from_status, source_id="PAY-7", target_id="JT-00042")
    user = UserFactory(username="anna")

    # when
    moved = record_transition(record, to_status, actor=Actor.of(user), reason="because", details={"n": 1})

    # then
    assert moved.status == to_status
    assert SyncRecord.objects.get(pk=record.pk).status == to_status
    entries = list(AuditEntry.objects.filter(sync_record=record))
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.from_status, entry.to_status, entry.action) == (from_status, to_status, "transition")
    assert (entry.actor, entry.user, entry.reason, entry.details) == ("anna", user, "because", {"n": 1})
    assert (entry.source_id, entry.target_id) == ("PAY-7", "JT-00042")
    assert (entry.tenant_id, entry.integration_id) == (record.integration.tenant_id, record.integration_id)


@pytest.mark.parametrize(("from_status", "to_status"), REFUSED, ids=[f"{a}->{b}" for a, b in REFUSED])
def test_a_refused_transition_raises_and_changes_nothing(from_status, to_status):
    # given
    record = SyncRecordFactory(status=from_status, source_id="PAY-7")

    # when
    with pytest.raises(TransitionRefused) as refused:
        record_transition(record, to_status, reason="because")

    # then
    assert str(refused.value) == (
        f"Cannot move record payments/PAY-7 from {from_status} to {to_status} (status: {from_status})"
    )
    assert SyncRecord.objects.get(pk=record.pk).status == from_status
    assert AuditEntry.objects.count() == 0


def test_a_transition_is_refused_when_another_worker_moved_the_record_first():
    # given a worker that saw the record `ready`, while another already claimed it
    record = SyncRecordFactory(status="ready")
    record_transition(record, "posting")

    # when
    with pytest.raises(TransitionRefused) as refused:
        record_transition(record, "flagged")

    # then
    assert str(refused.value) == (
        f"Cannot move record payments/{record.source_id} from ready to flagged: it was changed meanwhile "
        "(status: posting)"
    )
    assert SyncRecord.objects.get(pk=record.pk).status == "posting"
    assert AuditEntry.objects.count() == 1


def test_a_system_transition_is_audited_as_the_system_without_a_user():
    # given
    record = SyncRecordFactory(status="received")

    # when
    record_transition(record, "ready", reason="mapped and validated")

    # then
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.user, entry.reason) == ("system", None, "mapped and validated")


# --- approve ---------------------------------------------------------------------------------------------------


def test_approve_with_a_corrected_posting_keeps_the_correction_and_the_user():
    # given
    record = SyncRecordFactory(status="flagged", proposed_posting=PROPOSED)
    user = UserFactory(username="finn")
    correction = {"accounts": {"account": "3010"}, "dimensions": {"1": "100"}}

    # when
    approved = record_approve(record, user=user, corrected_posting=correction)

    # then
    stored = SyncRecord.objects.get(pk=record.pk)
    assert (approved.status, stored.status) == ("approved", "approved")
    assert stored.corrected_posting == correction
    assert stored.proposed_posting == PROPOSED
    entry = AuditEntry.objects.get()
    assert (entry.from_status, entry.to_status, entry.actor, entry.user) == ("flagged", "approved", "finn", user)
    assert entry.reason == "approved with corrections"
    assert entry.details == {"corrected_posting": correction}


def test_approve_without_corrections_records_the_note():
    # given
    record = SyncRecordFactory(status="flagged", proposed_posting=PROPOSED)
    user = UserFactory(username="finn")

    # when
    record_approve(record, user=user, note="checked with the bank statement")

    # then
    stored = SyncRecord.objects.get(pk=record.pk)
    assert (stored.status, stored.corrected_posting) == ("approved", None)
    entry = AuditEntry.objects.get()
    assert (entry.reason, entry.details, entry.user) == ("checked with the bank statement", {}, user)


@pytest.mark.parametrize("status", [s for s in STATUSES if s != "flagged"])
def test_approve_is_refused_unless_the_record_is_flagged(status):
    # given
    record = SyncRecordFactory(status=status, proposed_posting=PROPOSED)

    # when
    with pytest.raises(TransitionRefused) as refused:
        record_approve(record, user=UserFactory())

    # then
    assert str(refused.value) == f"Cannot approve a {status} record (status: {status})"
    assert SyncRecord.objects.get(pk=record.pk).status == status
    assert AuditEntry.objects.count() == 0


def test_approve_is_refused_when_the_record_has_no_posting_to_write():
    # given a record flagged before it could become a posting (the source lacked a field)
    record = SyncRecordFactory(status="flagged", source_id="PAY-9", proposed_posting=None)

    # when
    with pytest.raises(TransitionRefused) as refused:
        record_approve(record, user=UserFactory(), corrected_posting={"accounts": {"account": "3010"}})

    # then
    assert str(refused.value) == (
        "Cannot approve payments/PAY-9: there is no posting to write (the source could not be read as one); "
        "fix the source and replay it"
    )
    assert SyncRecord.objects.get(pk=record.pk).status == "flagged"
    assert AuditEntry.objects.count() == 0


def test_approve_is_refused_when_the_stored_record_moved_on_since_it_was_read():
    # given a review screen showing the record as flagged while a replay already moved it
    record = SyncRecordFactory(status="flagged", proposed_posting=PROPOSED)
    record_replay(record)

    # when
    with pytest.raises(TransitionRefused) as refused:
        record_approve(record, user=UserFactory())

    # then
    assert str(refused.value) == "Cannot approve a received record (status: received)"
    assert SyncRecord.objects.get(pk=record.pk).status == "received"
    assert AuditEntry.objects.count() == 1


# --- reject ----------------------------------------------------------------------------------------------------


def test_reject_records_the_user_and_the_reason():
    # given
    record = SyncRecordFactory(status="flagged")
    user = UserFactory(username="finn")

    # when
    rejected = record_reject(record, user=user, reason="duplicate of PAY-3")

    # then
    assert SyncRecord.objects.get(pk=record.pk).status == rejected.status == "rejected"
    entry = AuditEntry.objects.get()
    assert (entry.from_status, entry.to_status, entry.actor, entry.user, entry.reason) == (
        "flagged", "rejected", "finn", user, "duplicate of PAY-3"
    )


@pytest.mark.parametrize("reason", ["", "   "])
def test_reject_needs_a_reason(reason):
    # given
    record = SyncRecordFactory(status="flagged")

    # when
    with pytest.raises(TransitionRefused) as refused:
        record_reject(record, user=UserFactory(), reason=reason)

    # then
    assert str(refused.value) == "A rejection needs a reason."
    assert SyncRecord.objects.get(pk=record.pk).status == "flagged"
    assert AuditEntry.objects.count() == 0


@pytest.mark.parametrize("status", [s for s in STATUSES if s != "flagged"])
def test_reject_is_refused_unless_the_record_is_flagged(status):
    # given
    record = SyncRecordFactory(status=status)

    # when
    with pytest.raises(TransitionRefused) as refused:
        record_reject(record, user=UserFactory(), reason="not ours")

    # then
    assert str(refused.value) == f"Cannot reject a {status} record (status: {status})"
    assert SyncRecord.objects.get(pk=record.pk).status == status
    assert AuditEntry.objects.count() == 0


# --- replay ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["flagged", "failed"])
def test_replay_sends_a_flagged_or_failed_record_back_to_received_with_attempts_reset(status):
    # given
    record = SyncRecordFactory(
        status=status, attempts=8, next_attempt_at=NOON, last_error="timeout", proposed_posting=PROPOSED,
        corrected_posting={"accounts": {"account": "3010"}}, posting_marker="pay:SRC", write_attempted=True,
    )
    operator = UserFactory(username="olga")

    # when
    record_replay(record, actor=Actor.of(operator), reason="Visma is back")

    # then
    stored = SyncRecord.objects.get(pk=record.pk)
    assert (stored.status, stored.attempts, stored.next_attempt_at, stored.last_error) == ("received", 0, None, "")
    assert (stored.proposed_posting, stored.corrected_posting) == (None, None)
    # the marker stays: a write that may have landed is looked up before writing again
    assert (stored.posting_marker, stored.write_attempted) == ("pay:SRC", True)
    entry = AuditEntry.objects.get()
    assert (entry.from_status, entry.to_status, entry.actor, entry.user, entry.reason) == (
        status, "received", "olga", operator, "Visma is back"
    )


@pytest.mark.parametrize("status", [s for s in STATUSES if s not in ("flagged", "failed")])
def test_replay_is_refused_for_other_statuses(status):
    # given
    record = SyncRecordFactory(status=status, attempts=3)

    # when
    with pytest.raises(TransitionRefused) as refused:
        record_replay(record)

    # then
    assert str(refused.value) == f"Cannot replay a {status} record (status: {status})"
    stored = SyncRecord.objects.get(pk=record.pk)
    assert (stored.status, stored.attempts) == (status, 3)
    assert AuditEntry.objects.count() == 0


# --- retries ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jitter", "delays", "first_retry_at"),
    [
        # the top of each jittered range: the base doubling per attempt, capped at 600 s
        (lambda low, high: high, [60, 120, 240, 480, 600, 600, 600], "12:01:00"),
        # the bottom of each range: half of that
        (lambda low, high: low, [30, 60, 120, 240, 300, 300, 300], "12:00:30"),
    ],
    ids=["jitter-high", "jitter-low"],
)
def test_each_retry_waits_longer_up_to_the_cap_then_the_record_fails(settings, jitter, delays, first_retry_at):
    # given
    settings.SYNC_RETRY_BASE_SECONDS = 60
    settings.SYNC_RETRY_MAX_SECONDS = 600
    settings.SYNC_MAX_ATTEMPTS = 8
    record = SyncRecordFactory(status="received")

    # when
    waited = []
    with time_machine.travel(NOON, tick=False), mock.patch("audit.services.random.uniform", side_effect=jitter):
        for _ in range(7):
            record = record_schedule_retry(record, error="Visma answered 503")
            waited.append(int((record.next_attempt_at - NOON).total_seconds()))
        last = record_schedule_retry(record, error="Visma answered 503")

    # then
    assert waited == delays
    assert (last.status, last.attempts, last.next_attempt_at) == ("failed", 8, None)
    assert (last.last_error, last.reasons) == ("Visma answered 503", ["Visma answered 503"])
    entries = list(AuditEntry.objects.filter(sync_record=record).order_by("id"))
    assert [(e.from_status, e.to_status) for e in entries] == [("received", "retrying")] + [
        ("retrying", "retrying")
    ] * 6 + [("retrying", "failed")]
    assert entries[0].reason == f"attempt 1 failed, next at 2026-11-02 {first_retry_at} UTC: Visma answered 503"
    assert entries[-1].reason == "gave up after 8 attempts: Visma answered 503"


def test_the_jittered_delay_stays_between_half_the_ceiling_and_the_ceiling(settings):
    # given
    settings.SYNC_RETRY_BASE_SECONDS = 60
    settings.SYNC_RETRY_MAX_SECONDS = 600
    settings.SYNC_MAX_ATTEMPTS = 8
    record = SyncRecordFactory(status="received", attempts=2)

    # when
    with time_machine.travel(NOON, tick=False):
        retried = record_schedule_retry(record, error="timeout")

    # then (third attempt: ceiling 240 s)
    assert retried.attempts == 3
    assert timedelta(seconds=120) <= retried.next_attempt_at - NOON <= timedelta(seconds=240)


def test_retry_gives_up_at_the_configured_attempt(settings):
    # given
    settings.SYNC_MAX_ATTEMPTS = 3
    record = SyncRecordFactory(status="retrying", attempts=2, next_attempt_at=NOON)

    # when
    failed = record_schedule_retry(record, error="connection reset")

    # then
    stored = SyncRecord.objects.get(pk=record.pk)
    assert (failed.status, stored.status, stored.attempts, stored.next_attempt_at) == ("failed", "failed", 3, None)
    assert AuditEntry.objects.get().reason == "gave up after 3 attempts: connection reset"


# --- intake ----------------------------------------------------------------------------------------------------


def _upsert(integration, **changes):
    values = dict(
        integration=integration, stream="payments", source_id="PAY-1", payload={"amount": "10.00"},
        source_updated_at=NOON, amount=Decimal("10.00"), currency="EUR",
    )
    values.update(changes)
    return record_upsert(**values)


def test_upsert_creates_the_record_once_and_audits_its_arrival():
    # given
    integration = IntegrationFactory()

    # when
    first, created_first = _upsert(integration)
    second, created_second = _upsert(integration)

    # then
    assert (created_first, created_second) == (True, False)
    assert first.pk == second.pk
    assert SyncRecord.objects.count() == 1
    assert (first.status, first.source_payload, first.amount, first.currency) == (
        "received", {"amount": "10.00"}, Decimal("10.00"), "EUR"
    )
    entry = AuditEntry.objects.get()
    assert (entry.from_status, entry.to_status, entry.reason, entry.source_id) == (
        "", "received", "received from source", "PAY-1"
    )


def test_upsert_refreshes_the_payload_when_the_source_is_newer():
    # given
    integration = IntegrationFactory()
    _upsert(integration)

    # when
    record, created = _upsert(
        integration, payload={"amount": "12.00"}, amount=Decimal("12.00"), source_updated_at=NOON + timedelta(hours=1)
    )

    # then
    stored = SyncRecord.objects.get()
    assert created is False
    assert (stored.source_payload, stored.amount, stored.source_updated_at) == (
        {"amount": "12.00"}, Decimal("12.0000"), NOON + timedelta(hours=1)
    )
    assert AuditEntry.objects.count() == 1


def test_upsert_keeps_the_payload_when_the_source_is_older():
    # given
    integration = IntegrationFactory()
    _upsert(integration)

    # when
    older = NOON - timedelta(hours=1)
    _upsert(integration, payload={"amount": "9.00"}, amount=Decimal("9.00"), source_updated_at=older)

    # then
    stored = SyncRecord.objects.get()
    assert (stored.source_payload, stored.amount, stored.source_updated_at) == (
        {"amount": "10.00"}, Decimal("10.0000"), NOON
    )


@pytest.mark.parametrize("status", ["posted", "posting", "approved", "rejected", "ready"])
def test_upsert_never_refreshes_a_record_that_was_decided_on_or_is_being_written(status):
    # given
    integration = IntegrationFactory()
    record, _ = _upsert(integration)
    SyncRecord.objects.filter(pk=record.pk).update(status=status, proposed_posting=PROPOSED)

    # when
    again, created = _upsert(
        integration, payload={"amount": "99.00"}, amount=Decimal("99.00"), source_updated_at=NOON + timedelta(days=1)
    )

    # then
    stored = SyncRecord.objects.get()
    assert (created, again.status, stored.status) == (False, status, status)
    assert (stored.source_payload, stored.amount, stored.proposed_posting) == (
        {"amount": "10.00"}, Decimal("10.0000"), PROPOSED
    )
    assert AuditEntry.objects.count() == 1


def test_upsert_of_a_changed_source_drops_a_retrying_records_posting_so_it_is_mapped_again():
    # given a record waiting to retry a write of the old amount
    integration = IntegrationFactory()
    record, _ = _upsert(integration)
    SyncRecord.objects.filter(pk=record.pk).update(status="retrying", proposed_posting=PROPOSED)

    # when
    newer = NOON + timedelta(hours=1)
    _upsert(integration, payload={"amount": "12.00"}, amount=Decimal("12.00"), source_updated_at=newer)

    # then
    stored = SyncRecord.objects.get()
    assert (stored.status, stored.source_payload, stored.proposed_posting) == ("retrying", {"amount": "12.00"}, None)


def test_upsert_of_a_changed_source_sends_a_flagged_record_back_to_be_mapped_again():
    # given a flagged record whose proposed posting was made from the old amount
    integration = IntegrationFactory()
    record, _ = _upsert(integration)
    SyncRecord.objects.filter(pk=record.pk).update(
        status="flagged", proposed_posting=PROPOSED, corrected_posting={"accounts": {"account": "3010"}}
    )

    # when
    again, created = _upsert(
        integration, payload={"amount": "12.00"}, amount=Decimal("12.00"), source_updated_at=NOON + timedelta(hours=1)
    )

    # then nobody can approve a posting of the old amount
    stored = SyncRecord.objects.get()
    assert (created, again.status, stored.status) == (False, "received", "received")
    assert (stored.source_payload, stored.proposed_posting, stored.corrected_posting) == (
        {"amount": "12.00"}, None, None
    )
    entry = AuditEntry.objects.order_by("-id").first()
    assert (entry.from_status, entry.to_status, entry.reason) == (
        "flagged", "received", "the source object changed: mapped again"
    )


def test_upsert_of_an_unchanged_source_leaves_a_flagged_record_for_review():
    # given
    integration = IntegrationFactory()
    record, _ = _upsert(integration)
    SyncRecord.objects.filter(pk=record.pk).update(status="flagged", proposed_posting=PROPOSED)

    # when (a poller re-reads the same object in its overlap window)
    again, _ = _upsert(integration, source_updated_at=None)

    # then
    stored = SyncRecord.objects.get()
    assert (again.status, stored.status, stored.proposed_posting) == ("flagged", "flagged", PROPOSED)
    assert AuditEntry.objects.count() == 1


# --- the trail is append-only ----------------------------------------------------------------------------------


def test_an_audit_entry_cannot_be_changed_or_deleted_one_by_one():
    # given
    record = SyncRecordFactory(status="received")
    record_transition(record, "ready", reason="mapped")
    entry = AuditEntry.objects.get()

    # when / then
    entry.reason = "rewritten"
    with pytest.raises(PermissionError, match="append-only: they cannot be changed"):
        entry.save()
    with pytest.raises(PermissionError, match="append-only: they cannot be deleted"):
        entry.delete()
    assert AuditEntry.objects.get().reason == "mapped"


def test_audit_entries_cannot_be_updated_or_deleted_in_bulk():
    # given
    record = SyncRecordFactory(status="received")
    record_transition(record, "ready", reason="mapped")

    # when / then (each attempt in its own savepoint, as a caller's transaction would be)
    with pytest.raises(PermissionError, match="cannot be updated"), transaction.atomic():
        AuditEntry.objects.filter(sync_record=record).update(reason="rewritten")
    with pytest.raises(PermissionError, match="cannot be deleted"), transaction.atomic():
        AuditEntry.objects.all().delete()
    with pytest.raises(PermissionError, match="cannot be updated"), transaction.atomic():
        AuditEntry.objects.bulk_update([AuditEntry(pk=AuditEntry.objects.get().pk, reason="x")], ["reason"])
    assert list(AuditEntry.objects.values_list("reason", flat=True)) == ["mapped"]
