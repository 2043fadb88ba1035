"""The engine end to end on the tests' payments stream: map, validate, post once, flag, retry, recover, poll."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from audit.models import AuditEntry, SyncRecord
from audit.services import record_approve, record_reject, record_replay
from connectors.errors import PermanentError, RetryLater, TransientError
from connectors.models import SyncCursor, SyncRun
from connectors.pipeline import record_advance, record_ingest, records_advance_due, stream_poll
from mappings.models import GLAccount
from tests.factories import (
    stream_marker,
    DimensionValueFactory,
    GLAccountFactory,
    GLMappingRuleFactory,
    IntegrationFactory,
    UserFactory,
)
from tests.ledger_stream import Crash


def marker_of(source_id: str) -> str:
    """The marker the pipeline gave the record of this source object."""
    record = SyncRecord.objects.get(source_id=source_id)
    return stream_marker(record.integration, record.stream, source_id)

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def books(*, accounts=("3000", "7770", "1920"), inactive=(), **rule):
    """An integration whose Visma mirror has these accounts and one capture rule posting to 3000/7770/1920."""
    integration = IntegrationFactory()
    for number in accounts:
        GLAccountFactory(tenant=integration.tenant, number=number, active=number not in inactive)
    GLMappingRuleFactory(tenant=integration.tenant, name="PayPal captures", **rule)
    return integration


def deliver(payments_stream, integration, source_id, **payload) -> SyncRecord:
    """What a webhook or a poller does with one source object: store it, then take it as far as it goes."""
    payments_stream.SOURCE[source_id] = payload
    source = payments_stream.PaymentsStream(integration).read_one(source_id)
    record, _ = record_ingest(integration, "payments", source)
    return record_advance(record)


def trail(record) -> list[tuple[str, str]]:
    return list(
        AuditEntry.objects.filter(sync_record=record).order_by("id").values_list("from_status", "to_status")
    )


def lines(document) -> list[tuple[str, str, str, str]]:
    return [(line["role"], line["account"], line["debit"], line["credit"]) for line in document["lines"]]


# --- one record ------------------------------------------------------------------------------------------------


def test_a_payment_with_a_fee_is_posted_once_as_a_balanced_journal(payments_stream):
    # given
    integration = books()

    # when
    record = deliver(payments_stream, integration, "P-1", amount="100.00", fee="3.40", currency="EUR")

    # then
    assert (record.status, record.target_id, record.target_kind) == ("posted", "JT-00001", "journal")
    assert (record.posting_marker, record.reasons, record.attempts) == (marker_of("P-1"), [], 0)
    assert payments_stream.LEDGER.writes == 1
    document = payments_stream.LEDGER.documents["JT-00001"]
    assert lines(document) == [
        ("clearing", "1920", "96.60", "0"), ("fee", "7770", "3.40", "0"), ("account", "3000", "0", "100.00"),
    ]
    assert (document["marker"], document["rule"], document["currency"]) == (marker_of("P-1"), "PayPal captures", "EUR")
    assert trail(record) == [("", "received"), ("received", "ready"), ("ready", "posting"), ("posting", "posted")]
    posted_entry = AuditEntry.objects.filter(sync_record=record).order_by("id").last()
    assert (posted_entry.source_id, posted_entry.target_id, posted_entry.reason) == ("P-1", "JT-00001", "posted")


def test_a_payment_no_rule_matches_is_flagged_naming_the_transaction(payments_stream):
    # given a rule for refunds only
    integration = books(transaction_type="refund")

    # when
    record = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR", group="wholesale")

    # then
    assert record.status == "flagged"
    assert record.reasons == [
        "No active paypal mapping rule matches capture of 100.00 EUR for customer group 'wholesale': "
        "add a GL mapping rule for it, or approve with the accounts to use."
    ]
    assert record.proposed_posting["marker"] == marker_of("P-1")
    assert (payments_stream.LEDGER.writes, payments_stream.LEDGER.lookups) == (0, 0)
    assert trail(record) == [("", "received"), ("received", "flagged")]


def test_an_inactive_account_flags_the_record_naming_account_and_rule_and_writes_nothing(payments_stream):
    # given
    integration = books(inactive=("3000",))

    # when
    record = deliver(payments_stream, integration, "P-1", amount="100.00", fee="3.40", currency="EUR")

    # then
    assert record.status == "flagged"
    assert record.reasons == [
        "GL account 3000 on line 3 (account) is inactive in Visma (chosen by mapping rule 'PayPal captures'): "
        "activate it in Visma or point the rule at an active account."
    ]
    assert payments_stream.LEDGER.documents == {}
    assert (payments_stream.LEDGER.writes, payments_stream.LEDGER.lookups) == (0, 0)
    assert AuditEntry.objects.filter(sync_record=record, to_status__in=["posting", "posted"]).count() == 0
    # the stale mirror was asked about once, and Visma does not have it active either
    assert payments_stream.LEDGER.live_checks == [("account", "3000")]


def test_an_unknown_dimension_value_flags_the_record(payments_stream):
    # given
    integration = books(dimensions={"1": "999"})
    DimensionValueFactory(tenant=integration.tenant, segment_id=1, value="100")

    # when
    record = deliver(payments_stream, integration, "P-1", amount="50.00", currency="EUR")

    # then
    assert record.status == "flagged"
    assert record.reasons == [
        f"Dimension value 999 of segment 1 on line {number} is unknown in Visma (chosen by mapping rule "
        "'PayPal captures'): fix the rule's dimensions or the value in Visma."
        for number in (1, 2)
    ]
    assert payments_stream.LEDGER.writes == 0


def test_a_rule_without_the_fee_account_flags_a_payment_with_a_fee(payments_stream):
    # given
    integration = books(fee_account="")

    # when
    record = deliver(payments_stream, integration, "P-1", amount="100.00", fee="3.40", currency="EUR")

    # then
    assert record.status == "flagged"
    assert record.reasons == [
        "Mapping rule 'PayPal captures' has no fee account but the posting has a fee line: set the fee account "
        "on the rule.",
        "Line 2 (fee) has no GL account (chosen by mapping rule 'PayPal captures'): set one on the rule or approve "
        "with a corrected account.",
    ]
    assert payments_stream.LEDGER.writes == 0


def test_an_account_missing_from_a_stale_mirror_is_checked_live_once_and_posted(payments_stream):
    # given a mirror without 3000, which Visma has had since the last refresh
    integration = books(accounts=("7770", "1920"))
    payments_stream.LEDGER.visma_accounts = {"3000"}

    # when
    record = deliver(payments_stream, integration, "P-1", amount="100.00", fee="3.40", currency="EUR")

    # then
    assert (record.status, record.target_id) == ("posted", "JT-00001")
    assert payments_stream.LEDGER.live_checks == [("account", "3000")]
    assert GLAccount.objects.get(tenant=integration.tenant, number="3000").active is True
    assert lines(payments_stream.LEDGER.documents["JT-00001"])[2] == ("account", "3000", "0", "100.00")


def test_a_yen_amount_with_decimals_is_flagged(payments_stream):
    # given
    integration = books()

    # when
    record = deliver(payments_stream, integration, "P-1", amount="1000.50", currency="JPY")

    # then
    assert record.status == "flagged"
    assert record.reasons == [
        "Line 1 (clearing): debit 1000.50 has more decimals than JPY allows (0)",
        "Line 2 (account): credit 1000.50 has more decimals than JPY allows (0)",
    ]
    assert payments_stream.LEDGER.writes == 0


def test_a_whole_yen_amount_is_posted(payments_stream):
    # given
    integration = books()

    # when
    record = deliver(payments_stream, integration, "P-1", amount="1000", fee="36", currency="JPY")

    # then
    assert record.status == "posted"
    assert lines(payments_stream.LEDGER.documents[record.target_id]) == [
        ("clearing", "1920", "964", "0"), ("fee", "7770", "36", "0"), ("account", "3000", "0", "1000"),
    ]


def test_a_source_object_missing_its_amount_field_is_flagged_and_cannot_be_approved(payments_stream):
    # given
    integration = books()
    payments_stream.SOURCE["P-1"] = {"amount": "10.00", "currency": "EUR"}
    record, _ = record_ingest(integration, "payments", payments_stream.PaymentsStream(integration).read_one("P-1"))
    SyncRecord.objects.filter(pk=record.pk).update(source_payload={"currency": "EUR"})

    # when
    record = record_advance(record)

    # then
    assert (record.status, record.reasons, record.proposed_posting) == (
        "flagged", ["payments P-1: field amount is missing"], None
    )
    with pytest.raises(Exception, match="there is no posting to write"):
        record_approve(record, user=UserFactory())
    assert SyncRecord.objects.get(pk=record.pk).status == "flagged"


def test_a_payload_the_stream_did_not_expect_is_flagged_with_the_error_rather_than_stalling(payments_stream):
    # given a stored payload without the currency the stream's transform reads
    integration = books()
    payments_stream.SOURCE["P-1"] = {"amount": "10.00", "currency": "EUR"}
    record, _ = record_ingest(integration, "payments", payments_stream.PaymentsStream(integration).read_one("P-1"))
    SyncRecord.objects.filter(pk=record.pk).update(source_payload={"amount": "10.00"})

    # when
    record = record_advance(record)

    # then
    assert record.status == "flagged"
    assert record.reasons == ["payments P-1: could not be read as a posting: KeyError: 'currency'"]
    assert payments_stream.LEDGER.writes == 0


# --- review ----------------------------------------------------------------------------------------------------


def test_approve_with_a_corrected_account_posts_on_the_corrected_account(payments_stream):
    # given
    integration = books(inactive=("3000",))
    GLAccountFactory(tenant=integration.tenant, number="3010")
    record = deliver(payments_stream, integration, "P-1", amount="100.00", fee="3.40", currency="EUR")

    # when
    record_approve(record, user=UserFactory(username="finn"), corrected_posting={"accounts": {"account": "3010"}})
    record = record_advance(record)

    # then
    assert (record.status, record.target_id) == ("posted", "JT-00001")
    assert lines(payments_stream.LEDGER.documents["JT-00001"]) == [
        ("clearing", "1920", "96.60", "0"), ("fee", "7770", "3.40", "0"), ("account", "3010", "0", "100.00"),
    ]
    assert payments_stream.LEDGER.writes == 1
    assert trail(record) == [
        ("", "received"), ("received", "flagged"), ("flagged", "approved"), ("approved", "posting"),
        ("posting", "posted"),
    ]


def test_approve_without_fixing_the_invalid_account_flags_the_record_again_and_writes_nothing(payments_stream):
    # given
    integration = books(inactive=("3000",))
    record = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR")

    # when
    record_approve(record, user=UserFactory())
    record = record_advance(record)

    # then
    assert record.status == "flagged"
    assert record.reasons == [
        "GL account 3000 on line 2 (account) is inactive in Visma (chosen by mapping rule 'PayPal captures'): "
        "activate it in Visma or point the rule at an active account."
    ]
    assert (payments_stream.LEDGER.writes, payments_stream.LEDGER.documents) == (0, {})
    assert trail(record)[-2:] == [("flagged", "approved"), ("approved", "flagged")]


def test_a_rejected_record_is_never_posted(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON)
    integration = books(inactive=("3000",))
    record = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR")

    # when
    record_reject(record, user=UserFactory(), reason="test payment")
    record = record_advance(record)
    time_machine.move_to(NOON + timedelta(days=1))
    swept = records_advance_due()
    payments_stream.SOURCE["P-1"]["amount"] = "100.00"
    run = stream_poll(integration, "payments")

    # then
    assert (record.status, swept) == ("rejected", 0)
    assert (run.fetched, run.skipped, run.posted) == (1, 1, 0)
    assert SyncRecord.objects.get(pk=record.pk).status == "rejected"
    assert payments_stream.LEDGER.writes == 0


# --- failures and retries --------------------------------------------------------------------------------------


def test_a_write_whose_answer_was_lost_is_looked_up_after_the_settle_time_and_posted_once(payments_stream,
                                                                                             time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.LEDGER.fail_next = [TransientError("Visma answered 503")]

    # when
    record = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR")

    # then the next attempt waits for the settle time (10 min by default), longer than the backoff (30-60 s)
    assert (record.status, record.attempts) == ("retrying", 1)
    assert record.last_error == (
        f"Visma answered 503; the write may have reached the target: it is looked up by marker "
        f"{record.posting_marker} from 2026-11-02 12:10:00 UTC before anything is written again"
    )
    assert record.next_attempt_at == NOON + timedelta(minutes=10)
    time_machine.move_to(NOON + timedelta(minutes=9), tick=False)
    assert (records_advance_due(), payments_stream.LEDGER.writes) == (0, 0)

    # when the settle time has passed
    time_machine.move_to(NOON + timedelta(minutes=10), tick=False)
    advanced = records_advance_due()

    # then
    record.refresh_from_db()
    assert (advanced, record.status, record.target_id, record.next_attempt_at) == (1, "posted", "JT-00001", None)
    assert payments_stream.LEDGER.writes == 1
    # the first write may have landed, so the retry looked it up before writing
    assert payments_stream.LEDGER.lookups == 1
    assert trail(record) == [
        ("", "received"), ("received", "ready"), ("ready", "posting"), ("posting", "retrying"),
        ("retrying", "posting"), ("posting", "posted"),
    ]


def test_a_permanent_refusal_flags_the_record_with_the_targets_message(payments_stream):
    # given
    integration = books()
    payments_stream.LEDGER.fail_next = [
        PermanentError("400 Bad Request", status_code=400, system_message="Account 3000 is blocked for posting")
    ]

    # when
    record = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR")

    # then
    assert record.status == "flagged"
    assert record.reasons == ["journal refused by the target: Account 3000 is blocked for posting"]
    assert (payments_stream.LEDGER.writes, record.write_attempted) == (0, True)


def test_after_the_last_attempt_the_record_fails_and_a_replay_posts_it_once(payments_stream, time_machine, settings):
    # given
    settings.SYNC_MAX_ATTEMPTS = 3
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.LEDGER.fail_next = [TransientError("Visma answered 503")] * 3

    # when
    record = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR")
    for hours in (1, 2):
        time_machine.move_to(NOON + timedelta(hours=hours), tick=False)
        records_advance_due()
    record.refresh_from_db()

    # then
    assert (record.status, record.attempts, record.next_attempt_at) == ("failed", 3, None)
    assert [reason.split(";")[0] for reason in record.reasons] == ["Visma answered 503"]
    time_machine.move_to(NOON + timedelta(days=1), tick=False)
    assert records_advance_due() == 0
    assert payments_stream.LEDGER.writes == 0

    # when
    record_replay(record, reason="Visma is back")
    record = record_advance(record)

    # then
    assert (record.status, record.target_id, record.attempts) == ("posted", "JT-00001", 0)
    assert payments_stream.LEDGER.writes == 1


def test_a_refund_waits_for_its_capture_then_is_posted(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = books()
    GLMappingRuleFactory(tenant=integration.tenant, name="PayPal refunds", transaction_type="refund")

    # when the refund arrives first
    refund = deliver(payments_stream, integration, "R-1", amount="20.00", currency="EUR", type="refund",
                     waits_for="P-1")

    # then it waits, without spending an attempt, knowing what for
    assert (refund.status, refund.attempts, refund.proposed_posting) == ("waiting", 0, None)
    assert (refund.waiting_on_stream, refund.waiting_on_source_id, refund.waiting_since) == ("payments", "P-1", NOON)
    assert refund.next_attempt_at == NOON + timedelta(seconds=120)
    assert refund.last_error == "waiting: original payment P-1 is not posted yet"
    assert payments_stream.LEDGER.writes == 0

    # when the capture is posted (no sweep runs)
    capture = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR")
    refund.refresh_from_db()

    # then the refund was woken at once
    assert capture.status == "posted"
    assert (refund.status, refund.target_id, refund.waiting_on_stream, refund.waiting_since) == (
        "posted", "JT-00002", "", None)
    assert payments_stream.LEDGER.documents["JT-00002"]["rule"] == "PayPal refunds"
    assert payments_stream.LEDGER.writes == 2


def test_a_sweep_carries_on_past_a_record_it_cannot_advance(payments_stream, time_machine):
    # given one record of a stream that is no longer registered, and one due retry
    time_machine.move_to(NOON, tick=False)
    integration = books()
    orphan, _ = record_ingest(integration, "payments", payments_stream.PaymentsStream(integration)._source(
        "X-1", {"amount": "1.00", "currency": "EUR"}))
    SyncRecord.objects.filter(pk=orphan.pk).update(stream="gone")
    payments_stream.LEDGER.fail_next = [TransientError("Visma answered 503")]
    record = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR")

    # when the write's settle time has passed
    time_machine.move_to(NOON + timedelta(minutes=11), tick=False)
    advanced = records_advance_due()

    # then
    record.refresh_from_db()
    assert (advanced, record.status) == (1, "posted")
    assert SyncRecord.objects.get(pk=orphan.pk).status == "received"


# --- crash-safe posting ----------------------------------------------------------------------------------------


def test_a_crash_after_the_remote_write_is_recovered_by_marker_without_writing_again(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.LEDGER.crash_after_next_write = True

    # when the worker dies between Visma's answer and the local commit
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}
    record, _ = record_ingest(integration, "payments", payments_stream.PaymentsStream(integration).read_one("P-1"))
    with pytest.raises(Crash):
        record_advance(record)

    # then
    record.refresh_from_db()
    assert (record.status, record.target_id, record.posting_marker) == ("posting", "", marker_of("P-1"))
    assert payments_stream.LEDGER.writes == 1
    # within the lease (15 min by default) nobody touches it (the writer may still be alive)
    time_machine.move_to(NOON + timedelta(seconds=899), tick=False)
    assert records_advance_due() == 0

    # when the lease has run out
    time_machine.move_to(NOON + timedelta(seconds=901), tick=False)
    advanced = records_advance_due()

    # then
    record.refresh_from_db()
    assert (advanced, record.status, record.target_id) == (1, "posted", "JT-00001")
    assert (payments_stream.LEDGER.writes, payments_stream.LEDGER.lookups) == (1, 1)
    assert AuditEntry.objects.filter(sync_record=record).order_by("id").last().reason == (
        f"interrupted write found in target by marker {marker_of('P-1')}"
    )


def test_an_interrupted_write_whose_lookup_is_refused_waits_for_a_person_and_is_not_written_again(
    payments_stream, time_machine
):
    # given a worker died after the remote write, and the target now refuses the lookup
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.LEDGER.crash_after_next_write = True
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}
    record, _ = record_ingest(integration, "payments", payments_stream.PaymentsStream(integration).read_one("P-1"))
    with pytest.raises(Crash):
        record_advance(record)
    payments_stream.LEDGER.fail_next_lookup = PermanentError("403 Forbidden", system_message="No access to journals")

    # when the lease has run out
    time_machine.move_to(NOON + timedelta(seconds=901), tick=False)
    records_advance_due()

    # then
    record.refresh_from_db()
    assert record.status == "flagged"
    assert record.reasons == [
        f"an interrupted write could not be looked up by marker {marker_of('P-1')}: No access to journals; "
        "check the target "
        "for it, then approve or reject"
    ]
    assert payments_stream.LEDGER.writes == 1


def test_a_crash_before_the_remote_write_is_recovered_by_writing_once(payments_stream, time_machine, settings):
    # given
    settings.SYNC_POSTING_LEASE_SECONDS, settings.SYNC_WRITE_SETTLE_SECONDS = 60, 20
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.LEDGER.fail_next = [Crash("worker died before the request left")]
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}
    record, _ = record_ingest(integration, "payments", payments_stream.PaymentsStream(integration).read_one("P-1"))
    with pytest.raises(Crash):
        record_advance(record)
    assert SyncRecord.objects.get(pk=record.pk).status == "posting"

    # when
    time_machine.move_to(NOON + timedelta(seconds=61), tick=False)
    advanced = records_advance_due()

    # then
    record.refresh_from_db()
    assert (advanced, record.status, record.target_id) == (1, "posted", "JT-00001")
    assert payments_stream.LEDGER.writes == 1
    # the lapsed claim was taken over (posting → posting), looked up, and written under the new claim
    assert trail(record)[-3:] == [("ready", "posting"), ("posting", "posting"), ("posting", "posted")]
    assert payments_stream.LEDGER.lookups == 1


def test_a_spent_call_budget_waits_until_the_system_takes_calls_again_without_spending_an_attempt(
    payments_stream, time_machine
):
    # given Visma's hourly budget is spent until 13:00
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.LEDGER.fail_next = [RetryLater("call budget spent", retry_at=NOON + timedelta(hours=1))]

    # when
    record = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR")

    # then it waits for exactly that time, with no attempt counted
    assert (record.status, record.attempts, record.next_attempt_at) == ("retrying", 0, NOON + timedelta(hours=1))
    time_machine.move_to(NOON + timedelta(minutes=59), tick=False)
    assert (records_advance_due(), payments_stream.LEDGER.writes) == (0, 0)

    # when the hour has turned
    time_machine.move_to(NOON + timedelta(hours=1), tick=False)
    records_advance_due()

    # then
    record.refresh_from_db()
    assert (record.status, record.attempts, payments_stream.LEDGER.writes) == ("posted", 0, 1)


def test_a_transient_error_after_a_landed_write_is_retried_by_looking_up_the_marker(payments_stream, time_machine):
    # given Visma stored the journal but the answer timed out
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.LEDGER.fail_after_next_write = TransientError("read timeout")
    record = deliver(payments_stream, integration, "P-1", amount="100.00", currency="EUR")
    assert (record.status, payments_stream.LEDGER.writes) == ("retrying", 1)

    # when the settle time has passed
    time_machine.move_to(NOON + timedelta(minutes=11), tick=False)
    records_advance_due()

    # then
    record.refresh_from_db()
    assert (record.status, record.target_id) == ("posted", "JT-00001")
    assert (payments_stream.LEDGER.writes, len(payments_stream.LEDGER.documents)) == (1, 1)
    assert AuditEntry.objects.filter(sync_record=record).order_by("id").last().reason == (
        f"found already posted by marker {marker_of('P-1')}"
    )


def test_a_sweep_that_saw_an_old_claim_does_not_take_the_record_from_the_worker_that_reclaimed_it(payments_stream):
    # given a record left in posting, which another worker has since claimed again
    from audit.services import TransitionRefused, record_transition

    integration = books()
    record = SyncRecord.objects.create(
        integration=integration, stream="payments", source_id="P-1", status="posting",
        posting_started_at=NOON, write_attempted=True, version=4,
    )
    SyncRecord.objects.filter(pk=record.pk).update(posting_started_at=NOON + timedelta(minutes=11), version=5)

    # when the stale copy (version 4) tries to move it
    with pytest.raises(TransitionRefused) as refused:
        record_transition(record, "retrying")

    # then
    assert str(refused.value) == (
        "Cannot move record payments/P-1 from posting to retrying: another worker claimed the write at "
        "2026-11-02 12:11:00 UTC"
    )
    assert SyncRecord.objects.get(pk=record.pk).status == "posting"
    assert AuditEntry.objects.count() == 0


# --- polling ---------------------------------------------------------------------------------------------------


def test_a_poll_counts_what_it_read_and_moves_the_cursor_to_the_window_end(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.SOURCE.update({
        "P-1": {"amount": "100.00", "fee": "3.40", "currency": "EUR"},
        "P-2": {"amount": "20.00", "currency": "EUR"},
        "P-3": {"amount": "5.00", "currency": "EUR", "type": "chargeback"},
    })

    # when
    run = stream_poll(integration, "payments")

    # then
    assert (run.status, run.fetched, run.posted, run.flagged, run.skipped, run.failed) == (
        "completed", 3, 2, 1, 0, 0
    )
    assert (run.window_start, run.window_end) == (NOON - timedelta(days=7, minutes=10), NOON)
    assert payments_stream.SOURCE.windows == [(NOON - timedelta(days=7, minutes=10), NOON)]
    assert SyncCursor.objects.get(integration=integration, stream="payments").position == NOON
    assert payments_stream.LEDGER.writes == 2


def test_a_second_poll_over_the_same_objects_skips_them(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.SOURCE.update({
        "P-1": {"amount": "100.00", "currency": "EUR"},
        "P-2": {"amount": "5.00", "currency": "EUR", "type": "chargeback"},
    })
    stream_poll(integration, "payments")

    # when
    time_machine.move_to(NOON + timedelta(minutes=15), tick=False)
    run = stream_poll(integration, "payments")

    # then
    assert (run.fetched, run.posted, run.flagged, run.skipped) == (2, 0, 0, 2)
    # the new window starts the overlap before the cursor
    assert (run.window_start, run.window_end) == (NOON - timedelta(minutes=10), NOON + timedelta(minutes=15))
    assert payments_stream.LEDGER.writes == 1
    assert SyncRecord.objects.count() == 2
    assert AuditEntry.objects.filter(from_status="", to_status="received").count() == 2


def test_a_poll_counts_a_transient_failure_and_does_not_retry_it_before_it_is_due(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}
    payments_stream.LEDGER.fail_next = [TransientError("Visma answered 503")]

    # when
    first = stream_poll(integration, "payments")
    time_machine.move_to(NOON + timedelta(seconds=20), tick=False)
    second = stream_poll(integration, "payments")

    # then
    assert (first.fetched, first.posted, first.retrying, first.failed) == (1, 0, 1, 0)
    assert (second.fetched, second.posted, second.retrying, second.failed) == (1, 0, 1, 0)
    record = SyncRecord.objects.get()
    assert (record.status, record.attempts) == ("retrying", 1)
    assert payments_stream.LEDGER.writes == 0


def test_a_failing_read_fails_the_run_and_leaves_the_cursor(payments_stream, time_machine):
    # given a cursor from an earlier run, and a source that fails after the first object
    time_machine.move_to(NOON, tick=False)
    integration = books()
    SyncCursor.objects.create(integration=integration, stream="payments", position=NOON - timedelta(hours=1))
    payments_stream.SOURCE.update({
        "P-1": {"amount": "100.00", "currency": "EUR"},
        "P-2": {"amount": "20.00", "currency": "EUR"},
    })
    payments_stream.SOURCE.read_failures = [TransientError("PayPal answered 503")]

    # when
    with pytest.raises(TransientError):
        stream_poll(integration, "payments")

    # then
    run = SyncRun.objects.get()
    assert (run.status, run.error, run.fetched, run.posted) == ("failed", "TransientError: PayPal answered 503", 1, 1)
    assert run.finished_at == NOON
    assert SyncCursor.objects.get(integration=integration, stream="payments").position == NOON - timedelta(hours=1)
    # the object read before the failure is kept; the next run reads the whole window again
    assert list(SyncRecord.objects.values_list("source_id", "status")) == [("P-1", "posted")]


def test_a_poll_window_is_never_wider_than_the_stream_allows(payments_stream, time_machine):
    # given a cursor 60 days behind
    time_machine.move_to(NOON, tick=False)
    integration = books()
    SyncCursor.objects.create(integration=integration, stream="payments", position=NOON - timedelta(days=60))

    # when
    first = stream_poll(integration, "payments")
    second = stream_poll(integration, "payments")

    # then
    start = NOON - timedelta(days=60, minutes=10)
    assert (first.window_start, first.window_end) == (start, start + timedelta(days=31))
    # the second window resumes the overlap before the first one's end and stops at now
    assert (second.window_start, second.window_end) == (start + timedelta(days=31, minutes=-10), NOON)
    assert payments_stream.SOURCE.windows == [
        (first.window_start, first.window_end), (second.window_start, second.window_end)
    ]
    assert SyncCursor.objects.get(integration=integration, stream="payments").position == second.window_end


def test_a_poll_the_source_has_published_only_in_part_completes_with_the_cursor_at_what_was_published(
        payments_stream, time_machine):
    # given: the source has published up to two hours ago
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}
    payments_stream.SOURCE.published_until = NOON - timedelta(hours=2)

    # when
    run = stream_poll(integration, "payments")

    # then
    assert (run.status, run.error, run.posted) == ("completed", "", 1)
    assert (run.window_end, run.published_until) == (NOON, NOON - timedelta(hours=2))
    assert SyncCursor.objects.get(integration=integration, stream="payments").position == NOON - timedelta(hours=2)


def test_the_next_poll_resumes_from_what_was_published(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.SOURCE.published_until = NOON - timedelta(hours=2)
    stream_poll(integration, "payments")
    payments_stream.SOURCE.published_until = None

    # when
    time_machine.move_to(NOON + timedelta(minutes=15), tick=False)
    run = stream_poll(integration, "payments")

    # then
    assert (run.window_start, run.window_end) == (NOON - timedelta(hours=2, minutes=10), NOON + timedelta(minutes=15))
    assert run.published_until is None
    assert SyncCursor.objects.get(integration=integration, stream="payments").position == NOON + timedelta(minutes=15)


def test_a_source_published_to_the_window_end_or_beyond_moves_the_cursor_to_the_end(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.SOURCE.published_until = NOON + timedelta(seconds=1)

    # when
    run = stream_poll(integration, "payments")

    # then
    assert run.published_until is None
    assert SyncCursor.objects.get(integration=integration, stream="payments").position == NOON


def test_a_source_saying_less_is_published_than_the_cursor_holds_does_not_move_the_cursor_back(
        payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = books()
    SyncCursor.objects.create(integration=integration, stream="payments", position=NOON - timedelta(hours=1))
    payments_stream.SOURCE.published_until = NOON - timedelta(hours=3)

    # when
    run = stream_poll(integration, "payments")

    # then
    assert (run.status, run.published_until) == ("completed", NOON - timedelta(hours=3))
    assert SyncCursor.objects.get(integration=integration, stream="payments").position == NOON - timedelta(hours=1)


def test_a_poll_of_an_explicit_window_leaves_the_cursor(payments_stream, time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}

    # when
    run = stream_poll(integration, "payments", trigger="backfill", start=NOON - timedelta(days=3),
                      end=NOON - timedelta(days=2))

    # then
    assert (run.status, run.trigger, run.posted) == ("completed", "backfill", 1)
    assert (run.window_start, run.window_end) == (NOON - timedelta(days=3), NOON - timedelta(days=2))
    assert SyncCursor.objects.get(integration=integration, stream="payments").position is None


def test_a_changed_source_object_sends_a_flagged_record_through_the_pipeline_again(payments_stream, time_machine):
    # given a record flagged for a missing rule
    time_machine.move_to(NOON, tick=False)
    integration = books()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR", "type": "chargeback"}
    stream_poll(integration, "payments")

    # when the source corrects the transaction type
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR", "type": "capture"}
    run = stream_poll(integration, "payments")

    # then
    record = SyncRecord.objects.get()
    assert (run.posted, run.skipped, record.status, record.target_id) == (1, 0, "posted", "JT-00001")
    assert record.amount == Decimal("100.0000")


def test_a_stream_into_a_partner_system_brings_its_own_mapping_and_checks(payments_stream):
    # given a stream whose target is not the ledger: no GL rule applies, its own check refuses SEK
    from mappings.services import MappingOutcome

    class PartnerInvoices(payments_stream.PaymentsStream):
        def map(self, posting):
            return MappingOutcome(posting, None, [])

        def problems(self, posting):
            return [f"{posting.currency} cannot be collected"] if posting.currency == "SEK" else []

    integration = IntegrationFactory()
    payments_stream.SOURCE.update({"I-1": {"amount": "80.00", "currency": "EUR"},
                                   "I-2": {"amount": "90.00", "currency": "SEK"}})
    stream = PartnerInvoices(integration)

    # when
    outcomes = {}
    for source_id in ("I-1", "I-2"):
        record, _ = record_ingest(integration, "payments", stream.read_one(source_id))
        outcomes[source_id] = record_advance(record, stream=stream)

    # then
    assert (outcomes["I-1"].status, outcomes["I-1"].target_id) == ("posted", "JT-00001")
    assert (outcomes["I-2"].status, outcomes["I-2"].reasons) == ("flagged", ["SEK cannot be collected"])
    assert payments_stream.LEDGER.writes == 1
