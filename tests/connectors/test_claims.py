"""Claims that hold: a write belongs to one claim; a write that lost its claim is shown as a possible duplicate;
a sweep never runs twice at once and claims its batch."""
from datetime import timedelta

import pytest

from audit.models import AuditEntry, SyncRecord
from audit.services import TransitionRefused, record_duplicate_resolve
from connectors.pipeline import (
    SWEEP_LEASE,
    record_advance,
    records_advance_due,
    records_claim_due,
    work_lease_release,
    work_lease_take,
)
from tests.connectors.test_pipeline import NOON, books, deliver
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_write_that_lost_its_claim_is_shown_as_a_possible_duplicate_with_both_ids(payments_stream, time_machine,
                                                                                    monkeypatch, admin_client):
    # given a write that takes longer than the lease: meanwhile a sweep takes the record over, does not find the
    # first document (not committed yet) and writes a second one
    time_machine.move_to(NOON, tick=False)
    integration = books()
    stream_class = payments_stream.PaymentsStream
    first_write, first_find = stream_class.write, stream_class.find_posted
    takeovers = []

    def slow_write(self, posting, record):
        if not takeovers:
            takeovers.append(True)
            time_machine.move_to(NOON + timedelta(minutes=16), tick=False)
            monkeypatch.setattr(stream_class, "find_posted", lambda *args: None)
            records_advance_due()
            monkeypatch.setattr(stream_class, "find_posted", first_find)
        return first_write(self, posting, record)

    monkeypatch.setattr(stream_class, "write", slow_write)

    # when
    record = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR")

    # then the record is posted as the takeover's document, and the first worker's write is the possible duplicate
    assert (record.status, record.target_id, record.duplicate_targets) == ("posted", "JT-00001", ["JT-00002"])
    entry = AuditEntry.objects.get(sync_record=record, action="possible_duplicate")
    assert entry.reason == (
        f"possible duplicate in the target: journal JT-00002 (marker {record.posting_marker}) was written after this "
        "worker's claim ran out; the record is now posted as JT-00001; check both and reverse one"
    )
    assert (entry.source_id, entry.target_id, entry.details["target_ids"]) == ("P-1", "JT-00001",
                                                                             ["JT-00001", "JT-00002"])
    # and it shows in the review queue
    queue = admin_client.get("/admin/audit/syncrecord/?status=duplicates")
    assert queue.status_code == 200
    assert "possible duplicate in the target: JT-00002 also carry its marker" in queue.content.decode()


def test_finance_marks_a_possible_duplicate_checked_with_a_note(payments_stream):
    # given
    integration = books()
    record = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR")
    SyncRecord.objects.filter(pk=record.pk).update(duplicate_targets=["JT-00009"])
    record.refresh_from_db()
    fiona = UserFactory(username="fiona")

    # when
    checked = record_duplicate_resolve(record, user=fiona, note="JT-00009 reversed in Visma")

    # then
    assert (checked.status, checked.duplicate_targets) == ("posted", [])
    entry = AuditEntry.objects.get(sync_record=record, action="duplicate_resolved")
    assert (entry.actor, entry.reason, entry.details) == ("fiona", "JT-00009 reversed in Visma",
                                                          {"target_ids": ["JT-00009"]})
    with pytest.raises(TransitionRefused):
        record_duplicate_resolve(checked, user=fiona, note="again")


def test_a_sweep_does_not_start_while_the_previous_one_still_runs(payments_stream, time_machine):
    # given a due retry, and a sweep of another worker holding the lease
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.LEDGER.fail_next = [payments_stream.TransientError("Visma answered 503")]
    record = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR")
    time_machine.move_to(NOON + timedelta(minutes=11), tick=False)
    assert work_lease_take(SWEEP_LEASE, holder="worker-2", seconds=900)

    # when
    skipped = records_advance_due()

    # then
    assert (skipped, SyncRecord.objects.get(pk=record.pk).status) == (0, "retrying")

    # when the other sweep is done
    work_lease_release(SWEEP_LEASE, holder="worker-2")
    advanced = records_advance_due()

    # then
    assert (advanced, SyncRecord.objects.get(pk=record.pk).status) == (1, "posted")


def test_a_lease_left_by_a_dead_sweep_runs_out(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    assert work_lease_take(SWEEP_LEASE, holder="worker-that-died", seconds=900)

    # when
    during = work_lease_take(SWEEP_LEASE, holder="worker-2", seconds=900)
    time_machine.move_to(NOON + timedelta(seconds=900), tick=False)
    after = work_lease_take(SWEEP_LEASE, holder="worker-2", seconds=900)

    # then
    assert (during, after) == (False, True)


def test_records_claimed_by_one_sweep_are_not_due_for_another(payments_stream, time_machine):
    # given three records received and idle for 5 minutes
    time_machine.move_to(NOON, tick=False)
    integration = books()
    for source_id in ("P-1", "P-2", "P-3"):
        SyncRecord.objects.create(integration=integration, stream="payments", source_id=source_id)
    time_machine.move_to(NOON + timedelta(minutes=5), tick=False)

    # when
    first = records_claim_due(limit=2)
    second = records_claim_due(limit=2)
    third = records_claim_due(limit=2)

    # then
    assert (len(first), len(second), third) == (2, 1, [])
    assert set(first).isdisjoint(second)


def test_a_recovery_reads_whether_a_write_may_have_landed_from_the_record_it_claims(payments_stream, time_machine):
    # given a worker holding a copy read before a write was attempted
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.LEDGER.fail_next = [payments_stream.TransientError("Visma answered 503")]
    stale = SyncRecord.objects.get(pk=deliver(payments_stream, integration, "P-0", amount="1.00",
                                              currency="EUR").pk)
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}
    record = SyncRecord.objects.get(pk=stale.pk)

    # when another worker moves the record on, the stale copy cannot claim it
    SyncRecord.objects.filter(pk=record.pk).update(version=record.version + 1)
    with pytest.raises(TransitionRefused):
        from audit.services import record_claim_write

        record_claim_write(record)

    # then a fresh read claims it and knows a write may have landed
    time_machine.move_to(NOON + timedelta(minutes=11), tick=False)
    posted = record_advance(record)
    assert posted.status == "posted"
    assert payments_stream.LEDGER.lookups == 1
