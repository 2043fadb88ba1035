"""Waiting has an end and a face: woken at once, flagged with its awaited record, flagged after the longest wait,
counted as waiting, shown on the dashboard, drained by process_inbox."""
from datetime import timedelta

import pytest

from audit.models import AuditEntry, SyncRecord
from audit.selectors import dashboard_for
from audit.services import record_approve, record_reject
from connectors.pipeline import records_advance_due, stream_poll
from tests.commands.helpers import run
from tests.connectors.test_pipeline import NOON, books, deliver, trail
from tests.factories import GLMappingRuleFactory, UserFactory

pytestmark = pytest.mark.django_db


def with_refund_rule(integration):
    GLMappingRuleFactory(tenant=integration.tenant, name="PayPal refunds", transaction_type="refund")
    return integration


def a_refund_waiting_on(payments_stream, integration, capture_id: str = "P-1") -> SyncRecord:
    refund = deliver(payments_stream, integration, "R-1", amount="20.00", currency="EUR", type="refund",
                     waits_for=capture_id)
    assert refund.status == "waiting"
    return refund


def test_a_refund_whose_capture_is_rejected_is_flagged_with_that_reason_at_once(payments_stream, time_machine):
    # given a refund waiting on its capture, which arrives and is flagged (no rule for chargebacks)
    time_machine.move_to(NOON, tick=False)
    integration = with_refund_rule(books())
    refund = a_refund_waiting_on(payments_stream, integration)
    capture = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR", type="chargeback")

    # when finance rejects the capture
    record_reject(capture, user=UserFactory(username="fiona"), reason="test payment, never book it")

    # then
    refund.refresh_from_db()
    assert refund.status == "flagged"
    assert refund.reasons == [
        "payments P-1, which this record waits for, was rejected: reject this record too, or book it by hand"
    ]
    assert (refund.waiting_on_stream, refund.waiting_on_source_id) == ("", "")
    assert trail(refund) == [("", "received"), ("received", "waiting"), ("waiting", "flagged"), ("flagged", "flagged")]
    assert payments_stream.LEDGER.writes == 0


def test_a_refund_of_a_flagged_capture_is_flagged_too_and_posted_by_itself_once_the_capture_is(payments_stream,
                                                                                               time_machine):
    # given a refund waiting on a capture that is then flagged (its rule is missing)
    time_machine.move_to(NOON, tick=False)
    integration = with_refund_rule(books())
    refund = a_refund_waiting_on(payments_stream, integration)
    capture = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR", type="chargeback")

    # then the refund stops for a person with it
    refund.refresh_from_db()
    assert (capture.status, refund.status) == ("flagged", "flagged")
    assert refund.reasons == [
        "payments P-1, which this record waits for, is flagged for review (No active paypal mapping rule matches "
        "chargeback of 100.00 EUR: add a GL mapping rule for it, or approve with the accounts to use.); this record "
        "is mapped again by itself once that one is posted"
    ]

    # when finance approves the capture with an account, and a worker posts it
    record_approve(capture, user=UserFactory(username="fiona"),
                   corrected_posting={"accounts": {"account": "3000", "fee": "7770", "clearing": "1920"}})
    from connectors.pipeline import record_advance

    posted = record_advance(capture)

    # then the refund was mapped again and posted at once, with no sweep
    refund.refresh_from_db()
    assert (posted.status, refund.status, refund.target_id) == ("posted", "posted", "JT-00002")
    assert trail(refund) == [
        ("", "received"), ("received", "waiting"), ("waiting", "flagged"), ("flagged", "received"),
        ("received", "ready"), ("ready", "posting"), ("posting", "posted"),
    ]


def test_a_refund_arriving_after_its_capture_was_flagged_is_flagged_at_once(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = with_refund_rule(books())
    deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR", type="chargeback")

    # when
    refund = deliver(payments_stream, integration, "R-1", amount="20.00", currency="EUR", type="refund",
                     waits_for="P-1")

    # then
    assert refund.status == "flagged"
    assert refund.reasons[0].startswith("payments P-1, which this record waits for, is flagged for review")
    assert (refund.waiting_on_stream, refund.waiting_on_source_id) == ("payments", "P-1")


def test_a_record_that_waits_longer_than_the_longest_wait_is_flagged_by_the_sweep(payments_stream, time_machine,
                                                                                    settings):
    # given the longest wait is 24 h (the default)
    time_machine.move_to(NOON, tick=False)
    integration = with_refund_rule(books())
    refund = a_refund_waiting_on(payments_stream, integration)

    # when the sweep runs every few minutes for a day
    time_machine.move_to(NOON + timedelta(hours=23, minutes=59), tick=False)
    records_advance_due()
    still = SyncRecord.objects.get(pk=refund.pk).status
    time_machine.move_to(NOON + timedelta(hours=24), tick=False)
    records_advance_due()

    # then
    refund.refresh_from_db()
    assert (still, refund.status) == ("waiting", "flagged")
    assert refund.reasons == [
        "waited for payments P-1 since 2026-11-02 12:00 UTC, longer than the longest wait (24 h): waiting: original "
        "payment P-1 is not posted yet"
    ]
    # each look at what it waits for is no change of state: one entry in, one out
    assert trail(refund) == [("", "received"), ("received", "waiting"), ("waiting", "flagged")]


def test_the_longest_wait_is_a_setting(payments_stream, time_machine, settings):
    # given
    settings.SYNC_MAX_WAIT_SECONDS = 3600
    time_machine.move_to(NOON, tick=False)
    integration = with_refund_rule(books())
    refund = a_refund_waiting_on(payments_stream, integration)

    # when
    time_machine.move_to(NOON + timedelta(hours=1), tick=False)
    records_advance_due()

    # then
    refund.refresh_from_db()
    assert refund.status == "flagged"
    assert refund.reasons[0].startswith("waited for payments P-1 since 2026-11-02 12:00 UTC, longer than the "
                                        "longest wait (1 h)")


def test_a_poll_counts_a_waiting_record_as_waiting_not_failed(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = with_refund_rule(books())
    payments_stream.SOURCE["R-1"] = {"amount": "20.00", "currency": "EUR", "type": "refund", "waits_for": "P-9"}

    # when
    run_row = stream_poll(integration, "payments")

    # then
    assert (run_row.fetched, run_row.waiting, run_row.retrying, run_row.failed) == (1, 1, 0, 0)


def test_the_dashboard_lists_waiting_records_oldest_first_with_their_age(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = with_refund_rule(books())
    a_refund_waiting_on(payments_stream, integration)
    time_machine.move_to(NOON + timedelta(hours=3, minutes=5), tick=False)
    user = UserFactory(is_superuser=True, is_staff=True)

    # when
    dashboard = dashboard_for(user)

    # then
    [row] = dashboard.waiting
    assert (row.record.source_id, row.age_display, row.waiting_for) == ("R-1", "3 h 05 min", "payments P-1")
    assert next(count.count for count in dashboard.record_counts if count.status == "waiting") == 1


def test_process_inbox_also_advances_records_that_are_due(payments_stream, time_machine):
    # given a refund waiting on a capture that was posted while no worker ran (its wake-up was lost)
    time_machine.move_to(NOON, tick=False)
    integration = with_refund_rule(books())
    refund = a_refund_waiting_on(payments_stream, integration)
    capture_marker = payments_stream.PaymentsStream(integration).marker("P-1")
    payments_stream.LEDGER.documents["JT-00001"] = {"marker": capture_marker}
    time_machine.move_to(NOON + timedelta(minutes=3), tick=False)

    # when
    stdout, _ = run("process_inbox", integration.tenant.slug)

    # then
    refund.refresh_from_db()
    assert refund.status == "posted"
    assert stdout == (
        "Processed 0 inbound event(s).\n"
        "Advanced 1 due record(s): posted 1, flagged 0, waiting 0, retrying 0, failed 0\n"
    )
    assert AuditEntry.objects.filter(sync_record=refund, to_status="posted").count() == 1
