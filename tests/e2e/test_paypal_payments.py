"""PayPal → Visma over real HTTP: captures, refunds, duplicates, missed and racing webhooks, both emulators live."""
import json
from datetime import timedelta
from decimal import Decimal

import pytest

from audit.models import AuditEntry
from connectors.models import InboundEvent
from sandbox.paypal import paypal_capture_create
from sandbox.visma_company import visma_base_currency_set
from tests.paypal.world import ANNA, MIKKO, hours_ago, journal_lines, world  # noqa: F401


def test_a_capture_webhook_posts_a_balanced_journal_with_the_fee_split(world):
    # given
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=MIKKO, at=hours_ago(0),
                                    notify=False)

    # when
    status = world.deliver(world.last_event("PAYMENT.CAPTURE.COMPLETED"))
    processed = world.process_inbox()

    # then
    assert (status, processed) == (200, 1)
    record = world.record("captures", capture.object_id)
    assert (record.status, record.target_kind) == ("posted", "journal")
    [journal] = world.journal_with(capture.object_id)
    assert record.target_id == journal["batchNumber"]
    assert journal["currencyId"] == "EUR"
    assert journal_lines(journal) == [("1580", "96.12", "0.00"), ("7770", "3.88", "0.00"), ("3000", "0.00", "100.00")]
    assert {line["subaccount"]["subaccountNumber"] for line in journal["journalTransactionLines"]} == {"100"}
    assert journal["description"] == f"PayPal capture {capture.object_id} · customer 10004"
    assert {line["referenceNumber"] for line in journal["journalTransactionLines"]} == {world.marker(capture.object_id)}
    assert capture.object_id in journal["description"]
    # traceable by both ids in the export
    from io import StringIO

    from django.core.management import call_command

    exported = StringIO()
    call_command("export_records", "nordlys", "--format", "json", stdout=exported)
    [row] = json.loads(exported.getvalue())
    assert (row["stream"], row["source_id"], row["target_id"], row["status"]) == (
        "captures", capture.object_id, journal["batchNumber"], "posted")


def _sums(journals: list[dict]) -> dict[str, Decimal]:
    """Debit less credit per account over several journals, in the transaction currency."""
    totals: dict[str, Decimal] = {}
    for journal in journals:
        for account, debit, credit in journal_lines(journal):
            totals[account] = totals.get(account, Decimal("0")) + Decimal(debit) - Decimal(credit)
    return totals


def test_a_partial_then_a_full_refund_each_reverse_their_part_and_net_the_capture_to_zero(world):
    # given
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=MIKKO, at=hours_ago(0))
    world.process_inbox()
    from sandbox.paypal import paypal_refund_create

    # when
    partial = paypal_refund_create(capture.object_id, amount=Decimal("40.00"))
    world.process_inbox()
    rest = paypal_refund_create(capture.object_id)
    world.process_inbox()

    # then
    assert [world.record("refunds", refund.object_id).status for refund in (partial, rest)] == ["posted", "posted"]
    [first] = world.journal_with(partial.object_id)
    [second] = world.journal_with(rest.object_id)
    assert journal_lines(first) == [("3000", "40.00", "0.00"), ("7770", "0.00", "1.55"), ("1580", "0.00", "38.45")]
    assert journal_lines(second) == [("3000", "60.00", "0.00"), ("7770", "0.00", "2.33"), ("1580", "0.00", "57.67")]
    assert _sums(world.journals()) == {"1580": Decimal("0.00"), "7770": Decimal("0.00"), "3000": Decimal("0.00")}
    refund_record = world.record("refunds", partial.object_id)
    assert refund_record.proposed_posting["extra"]["capture_id"] == capture.object_id
    assert refund_record.proposed_posting["customer"] == "10004"


def test_a_refund_that_arrives_before_its_capture_waits_and_is_posted_after_it(world):
    # given: the capture's webhook is late; the refund's comes first
    from sandbox.paypal import paypal_refund_create

    capture = paypal_capture_create(amount=Decimal("250.00"), currency="EUR", payer=MIKKO, at=hours_ago(0),
                                    notify=False)
    capture_event = world.last_event("PAYMENT.CAPTURE.COMPLETED")
    refund = paypal_refund_create(capture.object_id, amount=Decimal("50.00"))

    # when
    world.process_inbox()
    waiting = world.record("refunds", refund.object_id)
    world.deliver(capture_event)
    world.process_inbox()

    # then: it waited on the capture, and was posted as soon as the capture was (no sweep ran)
    assert (waiting.status, waiting.waiting_on_stream, waiting.waiting_on_source_id) == (
        "waiting", "captures", capture.object_id)
    assert waiting.last_error.startswith(f"waiting: capture {capture.object_id} is not posted yet")
    assert world.record("captures", capture.object_id).status == "posted"
    refund_record = world.record("refunds", refund.object_id)
    assert refund_record.status == "posted"
    assert [journal["batchNumber"] for journal in world.journals()] == [
        world.record("captures", capture.object_id).target_id, refund_record.target_id,
    ]
    assert list(AuditEntry.objects.filter(sync_record=refund_record).order_by("id").values_list(
        "from_status", "to_status")) == [("", "received"), ("received", "waiting"), ("waiting", "ready"),
                                         ("ready", "posting"), ("posting", "posted")]


def test_the_same_webhook_delivered_three_times_posts_once(world):
    # given
    capture = paypal_capture_create(amount=Decimal("80.00"), currency="EUR", payer=MIKKO, at=hours_ago(0),
                                    notify=False)
    event = world.last_event("PAYMENT.CAPTURE.COMPLETED")

    # when
    statuses = [world.deliver(event) for _ in range(3)]
    world.process_inbox()

    # then
    assert statuses == [200, 200, 200]
    assert InboundEvent.objects.filter(integration=world.integration).count() == 1
    assert world.records("captures").count() == 1
    assert len(world.journal_with(capture.object_id)) == 1


def test_a_webhook_that_never_came_is_caught_by_the_next_poll(world):
    # given: PayPal published the capture but its webhook was lost
    from connectors.models import SyncCursor
    from connectors.pipeline import stream_poll

    capture = paypal_capture_create(amount=Decimal("42.50"), currency="EUR", payer=ANNA, at=hours_ago(4),
                                    notify=False)

    # when
    run = stream_poll(world.integration, "captures")

    # then
    assert (run.status, run.fetched, run.posted) == ("completed", 1, 1)
    assert InboundEvent.objects.count() == 0
    record = world.record("captures", capture.object_id)
    assert (record.status, record.proposed_posting["customer"]) == ("posted", "10001")
    [journal] = world.journal_with(capture.object_id)
    assert journal_lines(journal) == [("1580", "40.63", "0.00"), ("7770", "1.87", "0.00"), ("3000", "0.00", "42.50")]
    # the window reached to now, all of it published: the cursor is at its end
    assert run.published_until is None
    assert SyncCursor.objects.get(integration=world.integration, stream="captures").position == run.window_end


@pytest.mark.parametrize("first", ["webhook", "poll"])
def test_a_webhook_and_a_poll_for_the_same_capture_make_one_record_and_one_journal(world, first):
    # given
    from connectors.pipeline import stream_poll

    capture = paypal_capture_create(amount=Decimal("60.00"), currency="EUR", payer=ANNA, at=hours_ago(4),
                                    notify=False)
    event = world.last_event("PAYMENT.CAPTURE.COMPLETED")
    steps = {"webhook": lambda: (world.deliver(event), world.process_inbox()),
             "poll": lambda: stream_poll(world.integration, "captures")}

    # when
    steps[first]()
    steps["poll" if first == "webhook" else "webhook"]()

    # then
    assert world.records().count() == 1
    assert world.record("captures", capture.object_id).status == "posted"
    assert len(world.journal_with(capture.object_id)) == 1


def test_a_sync_reaching_past_what_paypal_has_published_completes_and_the_next_reads_on(world):
    # given: PayPal publishes four hours late today; a capture of five hours ago is published, one of an hour ago not
    from io import StringIO

    import time_machine
    from django.core.management import call_command
    from django.utils import timezone

    from connectors.models import SyncCursor, SyncRun
    from sandbox.paypal import paypal_sandbox_configure

    now = timezone.now().replace(microsecond=0)
    paypal_sandbox_configure(publication_delay=timedelta(hours=4))
    with time_machine.travel(now, tick=False) as traveller:
        published = paypal_capture_create(amount=Decimal("70.00"), currency="EUR", payer=ANNA,
                                          at=now - timedelta(hours=5), notify=False)
        late = paypal_capture_create(amount=Decimal("80.00"), currency="EUR", payer=ANNA,
                                     at=now - timedelta(hours=1), notify=False)
        first, second = StringIO(), StringIO()

        # when: sync now, and again once PayPal has published the late one
        call_command("sync", "nordlys", "paypal", "--stream", "captures", stdout=first, stderr=StringIO())
        first_cursor = SyncCursor.objects.get(integration=world.integration, stream="captures").position
        traveller.move_to(now + timedelta(hours=3, minutes=15))
        call_command("sync", "nordlys", "paypal", "--stream", "captures", stdout=second, stderr=StringIO())

    # then: the first run completed at PayPal's horizon, with what it had published
    horizon = now - timedelta(hours=4)
    assert first.getvalue() == (
        f"captures: fetched 1, posted 1, flagged 0, skipped 0, waiting 0, retrying 0, failed 0; read up to {horizon:%Y-%m-%d %H:%M:%S} UTC, "
        "what PayPal has published\n"
        "total: fetched 1, posted 1, flagged 0, skipped 0, waiting 0, retrying 0, failed 0\n"
    )
    first_run, second_run = SyncRun.objects.filter(stream="captures").order_by("started_at")
    assert (first_run.status, first_run.window_end, first_run.published_until) == ("completed", now, horizon)
    assert first_cursor == horizon
    # the next run read on from the horizon (less the overlap) and found the late capture
    assert (second_run.status, second_run.window_start) == ("completed", horizon - timedelta(hours=3))
    assert (second_run.fetched, second_run.posted, second_run.skipped) == (2, 1, 1)
    assert second_run.published_until == now - timedelta(minutes=45)
    assert SyncCursor.objects.get(integration=world.integration, stream="captures").position == \
        now - timedelta(minutes=45)
    assert [world.record("captures", capture.object_id).status for capture in (published, late)] == ["posted"] * 2
    assert len(world.journal_with(late.object_id)) == 1


@pytest.mark.postgres
def test_a_webhook_and_a_poll_racing_on_one_capture_post_it_once(world):
    # given: both start at once; Visma answers the first write slowly, so they overlap
    import threading

    from django.db import connection

    from connectors.pipeline import stream_poll
    from sandbox.services import visma_fault_delay

    capture = paypal_capture_create(amount=Decimal("75.00"), currency="EUR", payer=ANNA, at=hours_ago(4),
                                    notify=False)
    event = world.last_event("PAYMENT.CAPTURE.COMPLETED")
    world.deliver(event)
    visma_fault_delay(1, seconds=0.5)
    barrier = threading.Barrier(2)
    outcomes = {}

    def run(name, work):
        try:
            barrier.wait(timeout=10)
            outcomes[name] = work()
        except Exception as exc:  # noqa: BLE001 — the test asserts on what each side raised
            outcomes[name] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=("webhook", world.process_inbox)),
               threading.Thread(target=run, args=("poll", lambda: stream_poll(world.integration, "captures")))]

    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then
    assert not any(isinstance(outcome, Exception) for outcome in outcomes.values()), outcomes
    assert world.records().count() == 1
    assert world.record("captures", capture.object_id).status == "posted"
    assert len(world.journal_with(capture.object_id)) == 1


def test_ping_checks_the_paypal_credentials_end_to_end(world):
    # given
    from connectors.paypal.client import paypal_ping

    # when
    said = paypal_ping(world.integration.partner_connection)

    # then
    assert said.startswith("token OK, Transaction Search OK, data complete to ")
    assert said.endswith(f"({world.paypal_url})")


def test_a_eur_capture_paypal_credits_in_the_base_currency_moves_clearing_by_the_receivable_amount(world):
    # given: PayPal converts the EUR net into the account's SEK (the sandbox company's base currency) at 11.40;
    # Visma's EUR rate is 11.50 (sandbox/visma_erp.py CURRENCY_RATES)
    world.rules["capture"].exchange_difference_account = "7960"
    world.rules["capture"].save()
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=MIKKO, at=hours_ago(0),
                                    receivable_currency="SEK", exchange_rate=Decimal("11.40"))

    # when
    world.process_inbox()

    # then: fee 3.88 EUR → 44.23 SEK; net 96.12 EUR → 1095.77 SEK credited; the sale at Visma's rate 1150.00 SEK
    record = world.record("captures", capture.object_id)
    assert (record.status, record.target_kind) == ("posted", "journal")
    [journal] = world.journal_with(capture.object_id)
    assert journal["currencyId"] == "SEK"
    assert journal_lines(journal) == [("1580", "1095.77", "0.00"), ("7770", "44.23", "0.00"),
                                      ("7960", "10.00", "0.00"), ("3000", "0.00", "1150.00")]
    assert _sums([journal])["1580"] == Decimal("1095.77")
    assert sum(Decimal(debit) - Decimal(credit) for _, debit, credit in journal_lines(journal)) == 0
    assert "converted at 11.40 (Visma 11.5)" in journal["journalTransactionLines"][2]["transactionDescription"]
    settlement = record.proposed_posting["extra"]["settlement"]
    assert (settlement["exchange_rate"], settlement["visma_rate"], settlement["net"]) == ("11.40", "11.5", "1095.77")


def test_a_eur_capture_in_a_nok_company_moves_clearing_by_paypals_nok_receivable_amount(world):
    # given: a Visma company booking in NOK (sandbox switch base-currency); PayPal converts the EUR net into the
    # account's NOK at 11.60; Visma's EUR rate is 11.50 SEK / 0.98 SEK = 11.734694 NOK (/v2/currencyrate)
    visma_base_currency_set("NOK")
    world.rules["capture"].exchange_difference_account = "7960"
    world.rules["capture"].save()
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=MIKKO, at=hours_ago(0),
                                    receivable_currency="NOK", exchange_rate=Decimal("11.60"))

    # when
    world.process_inbox()

    # then: net 96.12 EUR → 1114.99 NOK credited, fee 3.88 EUR → 45.01 NOK; the sale at Visma's rate 1173.47 NOK;
    # the 13.47 NOK between PayPal's rate and Visma's on the exchange-difference account
    record = world.record("captures", capture.object_id)
    assert (record.status, record.target_kind) == ("posted", "journal")
    [journal] = world.journal_with(capture.object_id)
    assert journal["currencyId"] == "NOK"
    assert journal_lines(journal) == [("1580", "1114.99", "0.00"), ("7770", "45.01", "0.00"),
                                      ("7960", "13.47", "0.00"), ("3000", "0.00", "1173.47")]
    assert _sums([journal])["1580"] == Decimal("1114.99")


def test_a_converted_capture_without_an_exchange_difference_account_is_flagged_and_nothing_posted(world):
    # given: the capture rule has no exchange-difference account
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=MIKKO, at=hours_ago(0),
                                    receivable_currency="SEK", exchange_rate=Decimal("11.40"))

    # when
    world.process_inbox()

    # then
    record = world.record("captures", capture.object_id)
    assert record.status == "flagged"
    assert any("exchange_difference" in reason for reason in record.reasons)
    assert world.journal_with(capture.object_id) == []
