"""PayPal invoices and payments of invoices over real HTTP: a sent PayPal invoice becomes a Visma customer invoice
(the marker in externalReference, the PayPal invoice id in customerRefNumber), and the capture that pays it, or
pays a webshop invoice known in Visma by its reference, becomes a customer payment applied to that invoice, the fee
journaled apart."""
from decimal import Decimal

from sandbox.paypal import paypal_capture_create, paypal_invoice_create, paypal_invoice_pay, paypal_invoice_send
from tests.paypal.world import ANNA, MIKKO, hours_ago, journal_lines, world  # noqa: F401


def test_a_sent_paypal_invoice_becomes_a_visma_customer_invoice_and_its_payment_settles_it(world):
    # given
    invoice = paypal_invoice_create({
        "detail": {"currency_code": "EUR", "invoice_number": "PP-2026-0007",
                   "payment_term": {"term_type": "DUE_ON_DATE_SPECIFIED", "due_date": "2026-12-31"}},
        "primary_recipients": [{"billing_info": {"email_address": MIKKO.email}}],
        "items": [
            {"name": "Guided trail day", "quantity": "2", "unit_amount": {"currency_code": "EUR", "value": "85.00"}},
            {"name": "Trail map set", "quantity": "1", "unit_amount": {"currency_code": "EUR", "value": "24.50"},
             "discount": {"amount": {"currency_code": "EUR", "value": "4.50"}}},
        ],
    })
    world.process_inbox()

    # when
    paypal_invoice_send(invoice.object_id)
    world.process_inbox()
    invoice_record = world.record("invoices", invoice.object_id)
    paypal_invoice_pay(invoice.object_id, payer=MIKKO)
    world.process_inbox()

    # then
    assert (invoice_record.status, invoice_record.target_kind) == ("posted", "customer_invoice")
    visma_invoice = world.customer_invoice(invoice_record.target_id)
    assert (visma_invoice["externalReference"], visma_invoice["customerRefNumber"], visma_invoice["customer"]["number"],
            visma_invoice["currencyId"], visma_invoice["amountInCurrency"]) == (
        world.marker(invoice.object_id), invoice.object_id, "10004", "EUR", 190.0)
    assert [(line["description"], line["amountInCurrency"]) for line in visma_invoice["invoiceLines"]] == [
        ("Guided trail day", 170.0), ("Trail map set", 20.0),
    ]
    assert visma_invoice["documentDueDate"] == "2026-12-31T00:00:00"
    [capture_record] = world.records("captures")
    assert (capture_record.status, capture_record.target_kind) == ("posted", "customer_payment")
    [payment] = world.customer_payments()
    assert (payment["paymentRef"], payment["customer"]["number"], payment["paymentAmount"], payment["cashAccount"]) \
        == (world.marker(capture_record.source_id), "10004", 190.0, "1580")
    assert [(line["refNbr"], line["amountPaid"]) for line in payment["paymentLines"]] == [
        (invoice_record.target_id, 190.0)]
    [fee_journal] = world.journal_with(capture_record.source_id, "fee")
    assert journal_lines(fee_journal) == [("7770", "7.02", "0.00"), ("1580", "0.00", "7.02")]
    assert capture_record.target_id == f"payment {payment['refNbr']} + journal {fee_journal['batchNumber']}"


def test_a_capture_for_a_webshop_invoice_known_in_visma_is_applied_to_it(world):
    # given: Visma invoice 100002 (customer 10004, 120.00 EUR) has externalReference WEB-1002
    capture = paypal_capture_create(amount=Decimal("120.00"), currency="EUR", payer=MIKKO, invoice_id="WEB-1002",
                                    at=hours_ago(0))

    # when
    world.process_inbox()

    # then
    record = world.record("captures", capture.object_id)
    assert (record.status, record.target_kind) == ("posted", "customer_payment")
    assert record.proposed_posting["facts"]["transaction_type"] == "invoice_payment"
    [payment] = world.customer_payments()
    assert [(line["refNbr"], line["amountPaid"]) for line in payment["paymentLines"]] == [("100002", 120.0)]
    assert (payment["paymentRef"], payment["currency"]) == (world.marker(capture.object_id), "EUR")


def test_a_capture_for_a_reference_visma_does_not_know_is_an_ordinary_journal(world):
    # given
    capture = paypal_capture_create(amount=Decimal("30.00"), currency="EUR", payer=MIKKO, invoice_id="WEB-9999",
                                    at=hours_ago(0))

    # when
    world.process_inbox()

    # then
    record = world.record("captures", capture.object_id)
    assert (record.status, record.target_kind) == ("posted", "journal")
    assert world.customer_payments() == []


def test_a_norwegian_crown_capture_is_posted_in_nok(world):
    # given
    capture = paypal_capture_create(amount=Decimal("1250.00"), currency="NOK", payer=ANNA, at=hours_ago(0))

    # when
    world.process_inbox()

    # then
    [journal] = world.journal_with(capture.object_id)
    assert journal["currencyId"] == "NOK"
    assert journal_lines(journal) == [("1580", "1202.47", "0.00"), ("7770", "47.53", "0.00"),
                                      ("3000", "0.00", "1250.00")]


def test_a_converted_capture_for_a_known_invoice_pays_it_in_full_and_clearing_moves_by_the_receivable(world):
    # given: Visma invoice 100002 (customer 10004, 120.00 EUR, reference WEB-1002); PayPal credits SEK at 11.40,
    # Visma's EUR rate is 11.50
    world.rules["invoice_payment"].exchange_difference_account = "7960"
    world.rules["invoice_payment"].save()
    capture = paypal_capture_create(amount=Decimal("120.00"), currency="EUR", payer=MIKKO, invoice_id="WEB-1002",
                                    at=hours_ago(0), receivable_currency="SEK", exchange_rate=Decimal("11.40"))

    # when
    world.process_inbox()

    # then: the invoice is paid in full in EUR
    record = world.record("captures", capture.object_id)
    assert (record.status, record.target_kind) == ("posted", "customer_payment")
    [payment] = world.customer_payments()
    assert [(line["refNbr"], line["amountPaid"]) for line in payment["paymentLines"]] == [("100002", 120.0)]
    assert (payment["currency"], payment["paymentAmount"]) == ("EUR", 120.0)
    # fee 4.58 EUR → 52.21 SEK; net 115.42 EUR → 1315.79 SEK credited; the payment at Visma's rate is 1380.00 SEK
    [journal] = world.journal_with(capture.object_id, "fee")
    assert journal["currencyId"] == "SEK"
    assert journal_lines(journal) == [("7770", "52.21", "0.00"), ("7960", "12.00", "0.00"), ("1580", "0.00", "64.21")]
    assert Decimal("120.00") * Decimal("11.50") - Decimal("64.21") == Decimal(
        record.proposed_posting["extra"]["settlement"]["net"]) == Decimal("1315.79")


def test_a_refund_of_a_converted_capture_is_flagged_not_booked_in_the_wrong_currency(world):
    # given: a converted capture that paid Visma invoice 100002, posted
    from sandbox.paypal import paypal_refund_create

    world.rules["invoice_payment"].exchange_difference_account = "7960"
    world.rules["invoice_payment"].save()
    capture = paypal_capture_create(amount=Decimal("120.00"), currency="EUR", payer=MIKKO, invoice_id="WEB-1002",
                                    at=hours_ago(0), receivable_currency="SEK", exchange_rate=Decimal("11.40"))
    world.process_inbox()
    journals = len(world.journals())

    # when
    refund = paypal_refund_create(capture.object_id, amount=Decimal("20.00"))
    world.process_inbox()

    # then
    record = world.record("refunds", refund.object_id)
    assert record.status == "flagged"
    assert record.reasons == [f"refunds {refund.object_id}: refund {refund.object_id} returns part of capture "
                              f"{capture.object_id}, which PayPal converted: a converted refund is not booked "
                              "automatically yet"]
    assert len(world.journals()) == journals
