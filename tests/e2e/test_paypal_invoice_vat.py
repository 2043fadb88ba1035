"""PayPal invoices with tax over real HTTP, both emulators live: the PayPal tax becomes the mapped Visma VAT code on
each line, so the Visma emulator (VAT per VAT code) totals what PayPal billed and the payment settles it; a
difference is flagged before anything is written; invoices read from search-invoices keep their lines."""
from decimal import Decimal

import pytest

from connectors.paypal import client as paypal_client
from connectors.pipeline import stream_poll
from mappings.models import VatCodeMapping
from sandbox.models import VismaDocument
from sandbox.paypal import (
    paypal_invoice_create,
    paypal_invoice_pay,
    paypal_invoice_send,
    paypal_object,
    paypal_refund_create,
)
from sandbox.services import VISMA_SANDBOX_COMPANY_ID
from tests.paypal.world import MIKKO, world  # noqa: F401


def _taxed_invoice(percent: str = "25") -> str:
    invoice = paypal_invoice_create({
        "detail": {"currency_code": "EUR", "invoice_number": "PP-2026-0107"},
        "primary_recipients": [{"billing_info": {"email_address": MIKKO.email}}],
        "items": [
            {"name": "Guided trail day", "quantity": "2", "unit_amount": {"currency_code": "EUR", "value": "85.00"},
             "tax": {"name": "VAT", "percent": percent}},
            {"name": "Trail map set", "quantity": "1", "unit_amount": {"currency_code": "EUR", "value": "24.50"},
             "discount": {"amount": {"currency_code": "EUR", "value": "4.50"}},
             "tax": {"name": "VAT", "percent": percent}},
        ],
    }, notify=False)
    paypal_invoice_send(invoice.object_id, notify=False)
    return invoice.object_id


def _visma_invoices() -> list[dict]:
    return [document.body for document in VismaDocument.objects.filter(
        company_id=VISMA_SANDBOX_COMPANY_ID, collection="customer_invoice").order_by("id")]


@pytest.fixture
def vat_mapped(world):  # noqa: F811
    """Finance mapped PayPal's "VAT" at 25 % to Visma VAT code 3 (25 % in the Visma emulator)."""
    VatCodeMapping.objects.create(tenant=world.tenant, system="paypal", tax_name="VAT", percent=Decimal("25"),
                                  vat_code="3")
    return world


def test_a_paypal_invoice_with_tax_becomes_a_visma_invoice_with_the_same_total_settled_by_its_payment(vat_mapped):
    # given: 190.00 EUR net + 25 % = 237.50 EUR at PayPal
    invoice_id = _taxed_invoice()
    assert paypal_object("invoice", invoice_id).body["amount"]["value"] == "237.50"

    # when
    stream_poll(vat_mapped.integration, "invoices")
    paypal_invoice_pay(invoice_id, payer=MIKKO)
    vat_mapped.process_inbox()

    # then
    record = vat_mapped.record("invoices", invoice_id)
    assert record.status == "posted"
    visma_invoice = vat_mapped.customer_invoice(record.target_id)
    assert (visma_invoice["detailTotalInCurrency"], visma_invoice["vatTotalInCurrency"],
            visma_invoice["amountInCurrency"]) == (190.0, 47.5, 237.5)
    assert [(line["description"], line["amountInCurrency"], line["vatCode"]["id"])
            for line in visma_invoice["invoiceLines"]] == [("Guided trail day", 170.0, "3"), ("Trail map set", 20.0, "3")]
    [payment] = vat_mapped.customer_payments()
    assert [(line["refNbr"], line["amountPaid"]) for line in payment["paymentLines"]] == [(record.target_id, 237.5)]


def test_a_refund_of_a_paid_invoice_with_vat_is_a_credit_note_with_its_vat_code_and_ar_nets_to_zero(vat_mapped):
    # given: 190.00 EUR + 25 % VAT = 237.50 EUR invoiced in Visma, paid through PayPal and settled (released)
    invoice_id = _taxed_invoice()
    stream_poll(vat_mapped.integration, "invoices")
    capture = paypal_invoice_pay(invoice_id, payer=MIKKO)
    vat_mapped.process_inbox()
    number = vat_mapped.record("invoices", invoice_id).target_id
    assert vat_mapped.customer_invoice(number)["balanceInCurrency"] == 0.0
    capture_id = capture.body["payments"]["transactions"][0]["payment_id"]

    # when: 47.50 (VAT included) of the payment goes back
    refund = paypal_refund_create(capture_id, amount=Decimal("47.50"))
    vat_mapped.process_inbox()

    # then: a credit note for a fifth of each line's net on VAT code 3, Visma's VAT bringing it to 47.50, paid out
    record = vat_mapped.record("refunds", refund.object_id)
    assert (record.status, record.target_kind) == ("posted", "credit_note")
    [note] = [document.body for document in VismaDocument.objects.filter(
        company_id=VISMA_SANDBOX_COMPANY_ID, collection="customer_credit_note")]
    assert [(line["description"], line["amountInCurrency"], line["vatCode"]["id"]) for line in note["lines"]] == [
        ("Guided trail day", 34.0, "3"), ("Trail map set", 4.0, "3")]
    assert (note["detailTotalInCurrency"], note["vatTotalInCurrency"], note["amountInCurrency"],
            note["balanceInCurrency"], note["status"]) == (38.0, 9.5, 47.5, 0.0, "Closed")
    payment, paid_out = vat_mapped.customer_payments()
    assert (paid_out["type"], paid_out["paymentAmount"], paid_out["status"]) == ("Refund", 47.5, "Closed")
    # AR of the invoice: 237.50 invoiced − 237.50 paid − 47.50 credited + 47.50 paid back
    assert Decimal("237.50") - Decimal(str(payment["paymentAmount"])) - Decimal(str(note["amountInCurrency"])) \
        + Decimal(str(paid_out["paymentAmount"])) == 0


def test_a_paypal_total_visma_would_not_reach_is_flagged_before_the_write(vat_mapped):
    # given: PayPal bills 24 %, mapped to Visma's code 31 (15 %)
    VatCodeMapping.objects.create(tenant=vat_mapped.tenant, system="paypal", tax_name="VAT", percent=Decimal("24"),
                                  vat_code="31")
    invoice_id = _taxed_invoice(percent="24")
    before = len(_visma_invoices())

    # when
    stream_poll(vat_mapped.integration, "invoices")

    # then
    record = vat_mapped.record("invoices", invoice_id)
    assert record.status == "flagged"
    assert record.reasons == [
        f"invoices {invoice_id}: PayPal invoice {invoice_id}: Visma would total 218.50 EUR (lines 190.00 + VAT 28.50 "
        "by VAT code), PayPal's invoice total is 235.60 EUR: not written, the totals would differ"]
    assert len(_visma_invoices()) == before


def test_a_search_row_without_items_does_not_make_an_invoice_without_lines(vat_mapped, monkeypatch):
    # given: the search asks for no collections, so PayPal's rows come without items
    monkeypatch.setattr(paypal_client, "INVOICE_SEARCH_FIELDS", ())
    invoice_id = _taxed_invoice()

    # when
    stream_poll(vat_mapped.integration, "invoices")

    # then: the invoice was read whole and reached Visma with its lines
    record = vat_mapped.record("invoices", invoice_id)
    assert record.status == "posted"
    assert [line["description"] for line in vat_mapped.customer_invoice(record.target_id)["invoiceLines"]] == [
        "Guided trail day", "Trail map set"]
