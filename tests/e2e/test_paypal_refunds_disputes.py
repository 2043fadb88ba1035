"""PayPal refunds and chargebacks → Visma over real HTTP, both emulators live: a refund of a capture that paid a Visma
invoice is a credit note paid out by a customer refund (fee returned to the fee account), AR netting to zero; a
chargeback, or a hold for a dispute, moves the money out of clearing into the disputes account, and a chargeback
reversed or a hold released moves it back; a transaction code no stream takes is recorded and flagged with its code."""
from decimal import Decimal

from connectors.pipeline import stream_poll
from sandbox.models import VismaDocument
from sandbox.paypal import (
    T_CHARGEBACK,
    T_CHARGEBACK_REVERSAL,
    T_DISPUTE_HOLD,
    T_DISPUTE_HOLD_RELEASE,
    paypal_capture_create,
    paypal_chargeback_fee_create,
    paypal_dispute_event,
    paypal_dispute_funds_move,
    paypal_refund_create,
)
from sandbox.services import VISMA_SANDBOX_COMPANY_ID
from tests.paypal.world import MIKKO, hours_ago, journal_lines, world  # noqa: F401


def _documents(collection: str) -> list[dict]:
    return [document.body for document in VismaDocument.objects.filter(
        company_id=VISMA_SANDBOX_COMPANY_ID, collection=collection).order_by("id")]


def _money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def test_a_refund_of_a_paid_visma_invoice_is_a_credit_note_paid_out_and_ar_nets_to_zero(world):  # noqa: F811
    # given: EUR 120.00 paid Visma invoice 100002 (externalReference WEB-1002, customer 10004: one tent on 3010)
    capture = paypal_capture_create(amount=Decimal("120.00"), currency="EUR", payer=MIKKO, custom_id="WEB-1002",
                                    at=hours_ago(0))
    world.process_inbox()
    assert world.record("captures", capture.object_id).target_kind == "customer_payment"

    # when: 30.00 is refunded; PayPal returns its fee in proportion (4.58 × 30 / 120 = 1.145 → 1.14, half to even)
    refund = paypal_refund_create(capture.object_id, amount=Decimal("30.00"))
    world.process_inbox()

    # then
    record = world.record("refunds", refund.object_id)
    [note] = _documents("customer_credit_note")
    [payment, paid_out] = world.customer_payments()
    [fee_back] = world.journal_with(refund.object_id, "fee")
    assert (record.status, record.target_kind, record.target_id) == (
        "posted", "credit_note", f"credit note {note['referenceNumber']} + refund {paid_out['refNbr']} + journal "
                                 f"{fee_back['batchNumber']}")
    assert [(line["description"], line["account"]["number"], f"{_money(line['amountInCurrency'])}")
            for line in note["lines"]] == [("Tent", "3010", "30.00")]
    assert (note["customerRefNumber"], note["customer"]["number"], _money(note["balanceInCurrency"])) == (
        "100002", "10004", Decimal("0.00"))
    assert (paid_out["type"], paid_out["cashAccount"], _money(paid_out["paymentAmount"])) == (
        "Refund", "1580", Decimal("30.00"))
    assert [(line["documentType"], line["refNbr"]) for line in paid_out["paymentLines"]] == [
        ("CreditNote", note["referenceNumber"])]
    assert journal_lines(fee_back) == [("7770", "0.00", "1.14"), ("1580", "1.14", "0.00")]
    # AR for invoice 100002: 120.00 invoiced − 120.00 paid − 30.00 credited + 30.00 refunded
    invoice = world.customer_invoice("100002")
    assert _money(invoice["amountInCurrency"]) - _money(payment["paymentAmount"]) \
        - _money(note["amountInCurrency"]) + _money(paid_out["paymentAmount"]) == Decimal("0.00")
    assert _money(invoice["balanceInCurrency"]) == Decimal("0.00")


def test_a_refund_of_a_sale_without_an_invoice_stays_a_journal(world):  # noqa: F811
    # given
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=MIKKO, at=hours_ago(0))
    world.process_inbox()

    # when
    refund = paypal_refund_create(capture.object_id, amount=Decimal("40.00"))
    world.process_inbox()

    # then
    assert world.record("refunds", refund.object_id).target_kind == "journal"
    assert journal_lines(world.journal_with(refund.object_id)[0]) == [
        ("3000", "40.00", "0.00"), ("7770", "0.00", "1.55"), ("1580", "0.00", "38.45")]
    assert _documents("customer_credit_note") == []


def test_a_chargeback_moves_the_money_out_of_clearing_into_the_disputes_account(world):  # noqa: F811
    # given
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=MIKKO, at=hours_ago(0))
    world.process_inbox()

    # when: the buyer's bank charges the payment back (T1201, PAYMENT.CAPTURE.REVERSED); PayPal keeps its fee
    chargeback = paypal_refund_create(capture.object_id, reversal=True, reversal_code=T_CHARGEBACK)
    world.process_inbox()

    # then
    record = world.record("reversals", chargeback.object_id)
    [journal] = world.journal_with(chargeback.object_id)
    assert (record.status, record.target_kind, record.target_id) == ("posted", "journal", journal["batchNumber"])
    assert journal_lines(journal) == [("1590", "100.00", "0.00"), ("1580", "0.00", "100.00")]
    assert _documents("customer_credit_note") == []


def test_a_chargeback_fee_no_stream_takes_is_recorded_and_flagged_with_its_code(world):  # noqa: F811
    # given: the chargeback and, as its own transaction, PayPal's chargeback fee (T0106)
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=MIKKO, at=hours_ago(1))
    world.process_inbox()
    paypal_refund_create(capture.object_id, reversal=True, reversal_code=T_CHARGEBACK, at=hours_ago(1))
    world.process_inbox()
    fee = paypal_chargeback_fee_create(capture.object_id, fee="16.00", currency="EUR", at=hours_ago(1))

    # when
    run = stream_poll(world.integration, "unhandled")

    # then
    record = world.record("unhandled", fee.transaction_id)
    assert (run.status, run.fetched) == ("completed", 1)
    assert record.status == "flagged"
    assert record.reasons == [
        f"unhandled {fee.transaction_id}: PayPal transaction {fee.transaction_id} with event code T0106 (-16.00 EUR, "
        f"referring to {capture.object_id}) is not handled by this integration: book it by hand, then reject this "
        "record"]
    assert (record.amount, record.currency) == (Decimal("-16.00"), "EUR")
    assert list(world.records().values_list("stream", flat=True).order_by("stream")) == [
        "captures", "reversals", "unhandled"]


def test_a_won_chargeback_brings_the_money_back_from_the_disputes_account(world):  # noqa: F811
    # given: a chargeback moved EUR 100.00 into the disputes account
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=MIKKO, at=hours_ago(1))
    world.process_inbox()
    paypal_refund_create(capture.object_id, reversal=True, reversal_code=T_CHARGEBACK, at=hours_ago(1))
    world.process_inbox()

    # when: the chargeback is reversed in the seller's favour (T1202)
    returned = paypal_dispute_funds_move(capture.object_id, T_CHARGEBACK_REVERSAL, amount="100.00", currency="EUR",
                                         at=hours_ago(1))
    run = stream_poll(world.integration, "dispute_funds")

    # then
    record = world.record("dispute_funds", returned.transaction_id)
    [journal] = world.journal_with(returned.transaction_id)
    assert (run.status, run.posted, record.status, record.target_id) == ("completed", 1, "posted",
                                                                         journal["batchNumber"])
    assert journal_lines(journal) == [("1590", "0.00", "100.00"), ("1580", "100.00", "0.00")]
    assert "customer 10004" in journal["description"]
    disputes = sum((Decimal(debit) - Decimal(credit) for journal in world.journals()
                    for account, debit, credit in journal_lines(journal) if account == "1590"), Decimal(0))
    assert disputes == Decimal("0.00")


def test_a_dispute_hold_and_its_release_move_the_money_out_of_clearing_and_back(world):  # noqa: F811
    # given
    capture = paypal_capture_create(amount=Decimal("59.00"), currency="EUR", payer=MIKKO, at=hours_ago(1))
    world.process_inbox()

    # when: PayPal holds the amount while it looks into a dispute, then releases it
    held = paypal_dispute_funds_move(capture.object_id, T_DISPUTE_HOLD, amount="59.00", currency="EUR",
                                     at=hours_ago(1))
    released = paypal_dispute_funds_move(capture.object_id, T_DISPUTE_HOLD_RELEASE, amount="59.00", currency="EUR",
                                         at=hours_ago(1))
    stream_poll(world.integration, "dispute_funds")

    # then
    assert journal_lines(world.journal_with(held.transaction_id)[0]) == [("1590", "59.00", "0.00"),
                                                                         ("1580", "0.00", "59.00")]
    assert journal_lines(world.journal_with(released.transaction_id)[0]) == [("1590", "0.00", "59.00"),
                                                                             ("1580", "59.00", "0.00")]
    assert stream_poll(world.integration, "unhandled").fetched == 0


def test_a_paypal_dispute_is_noted_on_the_invoice_its_capture_paid_once_per_status(world):  # noqa: F811
    # given: EUR 120.00 paid Visma invoice 100002
    capture = paypal_capture_create(amount=Decimal("120.00"), currency="EUR", payer=MIKKO, custom_id="WEB-1002",
                                    at=hours_ago(0))
    world.process_inbox()

    # when: the buyer opens a dispute, and it is resolved in the seller's favour
    opened = paypal_dispute_event(capture.object_id, "CUSTOMER.DISPUTE.CREATED", status="OPEN")
    world.process_inbox()
    paypal_dispute_event(capture.object_id, "CUSTOMER.DISPUTE.RESOLVED", status="RESOLVED",
                         dispute_id=opened["dispute_id"], outcome_code="RESOLVED_SELLER_FAVOUR")
    world.process_inbox()

    # then
    dispute_id = opened["dispute_id"]
    assert [world.record("disputes", f"{dispute_id}:{status}").status for status in ("OPEN", "RESOLVED")] == [
        "posted", "posted"]
    assert world.customer_invoice("100002")["note"].splitlines() == [
        f"[{world.marker(f'{dispute_id}:OPEN')}] PayPal dispute {dispute_id} of 120.00 EUR "
        f"(MERCHANDISE_OR_SERVICE_NOT_RECEIVED), capture {capture.object_id}: OPEN",
        f"[{world.marker(f'{dispute_id}:RESOLVED')}] PayPal dispute {dispute_id} of 120.00 EUR "
        f"(MERCHANDISE_OR_SERVICE_NOT_RECEIVED), capture {capture.object_id}: RESOLVED, RESOLVED_SELLER_FAVOUR",
    ]


def test_a_paypal_dispute_of_a_sale_without_an_invoice_is_flagged_to_be_seen(world):  # noqa: F811
    # given
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=MIKKO, at=hours_ago(0))
    world.process_inbox()

    # when
    opened = paypal_dispute_event(capture.object_id, "CUSTOMER.DISPUTE.CREATED", status="OPEN")
    world.process_inbox()

    # then
    record = world.record("disputes", f"{opened['dispute_id']}:OPEN")
    assert record.status == "flagged"
    assert record.reasons == [
        f"disputes {opened['dispute_id']}:OPEN: PayPal dispute {opened['dispute_id']} of 100.00 EUR "
        f"(MERCHANDISE_OR_SERVICE_NOT_RECEIVED), capture {capture.object_id}: OPEN. The capture paid no Visma "
        "invoice, so there is nothing to note on; the money the dispute holds or takes is booked from Transaction "
        "Search"]
